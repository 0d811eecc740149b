delete from {target}
