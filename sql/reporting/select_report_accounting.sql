-- What the published state was made from: requested and received records, rejected and erased ones.
with

serving as (
    select
        generation_id,
        key_fingerprint,
        reference_date
    from staging.generations
    where status = 'serving'
),

published as (
    select
        coalesce(sum(batches.requested), 0) as requested,
        coalesce(sum(batches.received), 0) as received,
        coalesce(sum(batches.forgotten), 0) as forgotten
    from staging.published_batches as batches
    inner join serving on batches.generation_id = serving.generation_id
),

rejected as (
    select coalesce(sum(requested), 0) as requested
    from reporting.rpt_rejected_batches
),

erased as (
    select coalesce(sum(erasures.persons_erased), 0) as persons
    from landing.erasures as erasures
    inner join serving on erasures.generation_id = serving.generation_id
)

select
    serving.generation_id,
    serving.key_fingerprint,
    serving.reference_date,
    published.requested,
    published.received,
    published.forgotten + erased.persons as erased,
    rejected.requested as rejected
from published
cross join rejected
cross join erased
left join serving on true
