-- Records held back by anonymisation in the batches of the serving generation and never published since:
-- one row per person_key, with the run that first held it back. The one source of the report's quarantined
-- and quarantine_reasons (through reporting.rpt_quarantine_reasons) and of a run's quarantine metrics.
-- Not published: person level.
{{ config(alias='quarantined') }}

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
        records.quarantine_reason,
        records.run_id,
        records.loaded_at
    from {{ source('landing', 'quarantined_persons') }} as records
    inner join merged_batches
        on records.run_id = merged_batches.run_id and records.batch_id = merged_batches.batch_id
),

-- The quarantined keys that were published since: the join's hash table holds the few quarantined keys and
-- staging streams past it (`not in (select ... from staging)` hashed every published key: out of memory
-- under DuckDB's cap at 20M persons).
published as (
    select distinct quarantined.person_key
    from quarantined
    inner join {{ source('staging', 'persons') }} as persons
        on quarantined.person_key = persons.person_key
),

held_back as (
    select
        quarantined.*,
        row_number() over (
            partition by quarantined.person_key
            order by quarantined.loaded_at, quarantined.run_id
        ) as arrival
    from quarantined
    where not exists (
        select 1 from published
        where published.person_key = quarantined.person_key
    )
),

final as (
    select
        -- ids
        person_key,
        -- attributes
        min(quarantine_reason) as quarantine_reason,
        max(case when arrival = 1 then run_id end) as first_quarantined_by_run
    from held_back
    group by person_key
)

select * from final
