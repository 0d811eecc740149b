delete from landing.quarantined_persons
where run_id = :run_id and batch_id = :batch_id
