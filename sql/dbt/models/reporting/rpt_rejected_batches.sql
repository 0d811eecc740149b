-- Batches of the serving generation that the source did not deliver completely, that the validation gate
-- refused, or that were held back after loading, and that no later run has merged.
with

serving as (
    select generation_id from {{ source('staging', 'generations') }}
    where status = 'serving'
),

batches as (
    select batches.* from {{ source('landing', 'batches') }} as batches
    inner join serving on batches.generation_id = serving.generation_id
),

merged as (
    select distinct batch_id from batches
    where status = 'merged'
),

final as (
    select
        batch_id,
        max(persons) as persons,
        max(requested) as requested,
        max(rejection_reason) as rejection_reason,
        max(validated_at) as last_rejected_at
    from batches
    where status in ('rejected', 'held_back') and batch_id not in (select merged.batch_id from merged)
    group by batch_id
)

select * from final
