-- Makes a retried load replace, not duplicate, its own rows.
delete from landing.persons
where run_id = :run_id and batch_id = :batch_id
