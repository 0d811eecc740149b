-- Pending rewrites: the landed files (a batch's persons file, its quarantine sibling) whose landing rows hold
-- a tombstoned key, noted in the erasure's transaction before those rows go, so that none is forgotten.
insert into landing.erasure_files (
    erasure_id, landed_file, key_fingerprint, status, problem, noted_at, rewritten_at
)
with

tombstoned as (
    select tombstones.person_key from staging.tombstones as tombstones
    where tombstones.key_fingerprint = :key_fingerprint
),

landed_batches as (
    select
        batches.run_id,
        batches.batch_id,
        batches.landed_file
    from landing.batches as batches
    where batches.landed_file is not null
),

persons_files as (
    select landed_batches.landed_file
    from landed_batches
    inner join landing.persons as persons
        on landed_batches.run_id = persons.run_id and landed_batches.batch_id = persons.batch_id
    where persons.person_key in (select tombstoned.person_key from tombstoned)
),

quarantine_files as (
    select replace(landed_batches.landed_file, '.persons.parquet', '.quarantine.parquet') as landed_file
    from landed_batches
    inner join landing.quarantined_persons as quarantined
        on landed_batches.run_id = quarantined.run_id and landed_batches.batch_id = quarantined.batch_id
    where quarantined.person_key in (select tombstoned.person_key from tombstoned)
),

final as (
    select persons_files.landed_file from persons_files
    union
    select quarantine_files.landed_file from quarantine_files
)

select
    cast(:erasure_id as varchar) as erasure_id,
    final.landed_file,
    cast(:key_fingerprint as varchar) as key_fingerprint,
    'pending' as status,
    cast(null as varchar) as problem,
    cast(:noted_at as timestamp) as noted_at,
    cast(null as timestamp) as rewritten_at
from final
