-- The batch as the warehouse holds it: what the validation gate audits before the merge.
select
    person_key,
    gender,
    age_group,
    email_domain,
    country,
    country_code,
    age_reference_date
from landing.persons
where run_id = :run_id and batch_id = :batch_id
