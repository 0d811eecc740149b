-- After a re-key switched over: landing rows keyed with another key are no longer needed by anything.
delete from {target}
where coalesce(key_fingerprint, '') <> :key_fingerprint
