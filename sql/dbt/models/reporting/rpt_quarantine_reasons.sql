-- Persons held back and never published since, per reason (the report's quarantined is their sum).
with

quarantined as (
    select * from {{ ref('trf_quarantined') }}
),

final as (
    select
        quarantine_reason,
        count(*) as records
    from quarantined
    group by quarantine_reason
)

select * from final
