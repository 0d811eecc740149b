-- Over a run's batches: expectations that failed (per batch) and the largest null rate of a column.
select
    coalesce(
        sum(case when metric = 'expectation_success' and metric_value = 0 then 1 else 0 end), 0
    ) as expectations_failed,
    max(case when metric = 'null_rate' then metric_value end) as max_null_rate
from monitoring.metrics
where run_id = :run_id and batch_id is not null
