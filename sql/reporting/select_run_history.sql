-- The last :runs runs on this warehouse, newest first, from the audit trail of write-audit-publish: their
-- batches by outcome and the persons they published (counts only; a run that fetched nothing has no row).
with

runs as (
    select
        run_id,
        min(loaded_at) as started_at,
        max(coalesce(merged_at, validated_at, loaded_at)) as last_step_at,
        count(*) as batches,
        sum(case when status = 'merged' then 1 else 0 end) as merged_batches,
        sum(case when status = 'rejected' then 1 else 0 end) as rejected_batches,
        sum(case when status = 'held_back' then 1 else 0 end) as held_back_batches,
        sum(case when status = 'merged' then persons else 0 end) as persons,
        sum(case when status = 'merged' then quarantined else 0 end) as quarantined
    from landing.batches
    group by run_id
),

ranked as (
    select
        runs.*,
        row_number() over (order by runs.started_at desc, runs.run_id desc) as recency
    from runs
)

select
    run_id,
    started_at,
    last_step_at,
    batches,
    merged_batches,
    rejected_batches,
    held_back_batches,
    persons,
    quarantined
from ranked
where recency <= :runs
order by started_at desc, run_id desc
