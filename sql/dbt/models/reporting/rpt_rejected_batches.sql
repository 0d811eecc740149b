-- Batches the validation gate refused (or held back after loading) that no later run has merged.
with

batches as (
    select * from {{ source('landing', 'batches') }}
),

merged as (
    select distinct batch_id from batches
    where status = 'merged'
),

final as (
    select
        batch_id,
        max(persons) as persons,
        max(validated_at) as last_rejected_at
    from batches
    where status in ('rejected', 'held_back') and batch_id not in (select merged.batch_id from merged)
    group by batch_id
)

select * from final
