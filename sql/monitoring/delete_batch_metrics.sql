-- A batch validated again in the same run (a retry) replaces its metrics.
delete from monitoring.metrics
where run_id = :run_id and batch_id = :batch_id
