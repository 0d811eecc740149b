-- Publish one validated batch: insert new person_keys, update changed ones, leave the rest untouched.
merge into staging.persons as target
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
        run_id
    from landing.persons
    where run_id = :run_id and batch_id = :batch_id
) as source
    on target.person_key = source.person_key
when matched and (
    target.gender <> source.gender
    or target.age_group <> source.age_group
    or target.email_domain <> source.email_domain
    or target.country <> source.country
    or target.country_code <> source.country_code
    or target.age_reference_date <> source.age_reference_date
) then update set
    gender = source.gender,
    age_group = source.age_group,
    email_domain = source.email_domain,
    country = source.country,
    country_code = source.country_code,
    age_reference_date = source.age_reference_date,
    batch_id = source.batch_id,
    run_id = source.run_id,
    updated_at = :merged_at
when not matched then insert (
    person_key, gender, age_group, email_domain, country, country_code,
    age_reference_date, batch_id, run_id, first_merged_at, updated_at
) values (
    source.person_key, source.gender, source.age_group, source.email_domain, source.country,
    source.country_code, source.age_reference_date, source.batch_id, source.run_id,
    :merged_at, :merged_at
)
