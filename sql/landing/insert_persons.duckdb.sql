-- DuckDB: append a landed batch from the Arrow table registered as landed_persons.
insert into landing.persons (
    person_key, gender, age_group, email_domain, country, country_code,
    age_reference_date, batch_id, run_id, loaded_at, key_fingerprint
)
select
    person_key,
    gender,
    age_group,
    email_domain,
    country,
    country_code,
    age_reference_date,
    :batch_id,
    :run_id,
    :loaded_at,
    :key_fingerprint as key_fingerprint
from landed_persons
