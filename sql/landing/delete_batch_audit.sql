delete from landing.batches
where run_id = :run_id and batch_id = :batch_id
