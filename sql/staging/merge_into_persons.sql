-- Publish one validated batch into {target} (staging.persons, or staging.persons_rebuild while a new
-- generation is built): insert new person_keys, update changed ones, never a forgotten person.
-- Every bind parameter sits in the source query (Snowflake test servers rewrite MERGE per clause).
-- The published columns are filled in from OUTPUT_COLUMNS (flows.anonymise.columns): person_columns and
-- batch_person_columns list them all; person_changed and person_updates all but the key, person_key.
merge into {target} as staged
using (
    select
        {person_columns},
        batch_id,
        run_id,
        key_fingerprint,
        cast(:generation_id as varchar) as generation_id,
        cast(:merged_at as timestamp) as merged_at
    from landing.persons
    where
        run_id = :run_id
        and batch_id = :batch_id
        and person_key not in (
            select tombstones.person_key from staging.tombstones as tombstones
            where tombstones.key_fingerprint = :key_fingerprint
        )
) as batch
    on staged.person_key = batch.person_key
when matched and ({person_changed}) then
    update
        set
            {person_updates},
            batch_id = batch.batch_id,
            run_id = batch.run_id,
            updated_at = batch.merged_at
when not matched then insert (
    {person_columns}, batch_id, run_id, first_merged_at, updated_at, key_fingerprint, generation_id
) values (
    {batch_person_columns}, batch.batch_id, batch.run_id,
    batch.merged_at, batch.merged_at, batch.key_fingerprint, batch.generation_id
)
