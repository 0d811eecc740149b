-- Records held back by anonymisation in the batches of the serving generation and never published since:
-- one row per person_key (the quarantine of the published state, at its one key and reference date).
with

serving as (
    select generation_id from {{ source('staging', 'generations') }}
    where status = 'serving'
),

merged_batches as (
    select distinct
        batches.run_id,
        batches.batch_id
    from {{ source('landing', 'batches') }} as batches
    inner join serving on batches.generation_id = serving.generation_id
    where batches.status = 'merged'
),

quarantined as (
    select
        records.person_key,
        records.quarantine_reason
    from {{ source('landing', 'quarantined_persons') }} as records
    inner join merged_batches
        on records.run_id = merged_batches.run_id and records.batch_id = merged_batches.batch_id
),

published as (
    select person_key from {{ source('staging', 'persons') }}
),

final as (
    select
        person_key,
        min(quarantine_reason) as quarantine_reason
    from quarantined
    where person_key not in (select published.person_key from published)
    group by person_key
)

select * from final
