-- Quality of the last :runs runs, oldest first, from the audit trail of write-audit-publish (counts only).
with

runs as (
    select
        run_id,
        min(loaded_at) as started_at,
        count(*) as batches,
        sum(case when status = 'merged' then 1 else 0 end) as merged_batches,
        sum(case when status = 'rejected' then 1 else 0 end) as rejected_batches,
        sum(case when status = 'held_back' then 1 else 0 end) as held_back_batches,
        sum(extracted) as extracted,
        sum(quarantined) as quarantined
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
    batches,
    merged_batches,
    rejected_batches,
    held_back_batches,
    round(100.0 * merged_batches / batches, 2) as merged_pct,
    round(100.0 * quarantined / nullif(extracted, 0), 2) as quarantined_pct
from ranked
where recency <= :runs
order by started_at, run_id
