-- Publish one validated batch into {target} (staging.persons, or staging.persons_rebuild while a new
-- generation is built): insert new person_keys, update changed ones, never a forgotten person.
-- Every bind parameter sits in the source query (Snowflake test servers rewrite MERGE per clause).
merge into {target} as staged
using (
    select
        person_key,
        gender,
        age_group,
        email_domain,
        country,
        country_code,
        age_reference_date,
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
when matched and (
    staged.gender <> batch.gender
    or staged.age_group <> batch.age_group
    or staged.email_domain <> batch.email_domain
    or staged.country <> batch.country
    or staged.country_code <> batch.country_code
    or staged.age_reference_date <> batch.age_reference_date
) then
    update
        set
            gender = batch.gender,
            age_group = batch.age_group,
            email_domain = batch.email_domain,
            country = batch.country,
            country_code = batch.country_code,
            age_reference_date = batch.age_reference_date,
            batch_id = batch.batch_id,
            run_id = batch.run_id,
            updated_at = batch.merged_at
when not matched then insert (
    person_key, gender, age_group, email_domain, country, country_code,
    age_reference_date, batch_id, run_id, first_merged_at, updated_at, key_fingerprint, generation_id
) values (
    batch.person_key, batch.gender, batch.age_group, batch.email_domain, batch.country,
    batch.country_code, batch.age_reference_date, batch.batch_id, batch.run_id,
    batch.merged_at, batch.merged_at, batch.key_fingerprint, batch.generation_id
)
