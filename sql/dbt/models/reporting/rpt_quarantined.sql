-- Records held back by anonymisation and never published since: one row per person_key.
with

quarantined as (
    select * from {{ source('landing', 'quarantined_persons') }}
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
