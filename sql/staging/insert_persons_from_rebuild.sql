-- The switch-over: the rebuilt generation becomes staging.persons (inside one transaction).
insert into staging.persons (
    person_key, gender, age_group, email_domain, country, country_code,
    age_reference_date, batch_id, run_id, first_merged_at, updated_at, key_fingerprint, generation_id
)
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
    first_merged_at,
    updated_at,
    key_fingerprint,
    generation_id
from staging.persons_rebuild
