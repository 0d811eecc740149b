-- Landed files (by their persons file) of every batch whose landing rows hold a tombstoned person_key.
with

tombstoned as (
    select tombstones.person_key from staging.tombstones as tombstones
    where tombstones.key_fingerprint = :key_fingerprint
),

affected as (
    select
        persons.run_id,
        persons.batch_id
    from landing.persons as persons
    where persons.person_key in (select tombstoned.person_key from tombstoned)
    union
    select
        quarantined.run_id,
        quarantined.batch_id
    from landing.quarantined_persons as quarantined
    where quarantined.person_key in (select tombstoned.person_key from tombstoned)
)

select distinct batches.landed_file
from landing.batches as batches
inner join affected
    on batches.run_id = affected.run_id and batches.batch_id = affected.batch_id
where batches.landed_file is not null
order by batches.landed_file
