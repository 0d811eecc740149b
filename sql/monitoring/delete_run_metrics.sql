-- The run-level metrics of a run, replaced if its end is recorded again.
delete from monitoring.metrics
where run_id = :run_id and batch_id is null
