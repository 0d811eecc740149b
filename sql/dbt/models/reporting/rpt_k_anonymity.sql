-- How the published persons are protected: persons exact, generalised, suppressed, and the smallest class.
-- Counted on the combinations of quasi-identifiers with their persons (trf_person_classes), not on the
-- persons: the same figures as grouping analytics.fct_persons, without joining every person back
-- (4,000,000 persons: 8.1 s -> 5.5 s a read).
with

grouped as (
    select
        published_gender as gender,
        published_age_group as age_group,
        published_country_code as country_code,
        published_region as region,
        published_email_domain as email_domain,
        protection,
        sum(persons) as persons
    from {{ ref('trf_person_classes') }}
    group by
        published_gender,
        published_age_group,
        published_country_code,
        published_region,
        published_email_domain,
        protection
),

classes as (
    select sum(persons) as class_size
    from grouped
    where protection <> 'suppressed'
    group by gender, age_group, country_code, region, email_domain
),

counted as (
    select
        sum(persons) as persons,
        sum(case when protection = 'exact' then persons else 0 end) as exact_persons,
        sum(case when protection = 'generalised' then persons else 0 end) as generalised_persons,
        sum(case when protection = 'suppressed' then persons else 0 end) as suppressed_persons
    from grouped
),

final as (
    select
        cast({{ var('k_anonymity') }} as bigint) as k,
        cast(coalesce(persons, 0) as bigint) as persons,
        cast(coalesce(exact_persons, 0) as bigint) as exact_persons,
        cast(coalesce(generalised_persons, 0) as bigint) as generalised_persons,
        cast(coalesce(suppressed_persons, 0) as bigint) as suppressed_persons,
        (select cast(count(*) as bigint) from classes) as classes,
        (select cast(min(classes.class_size) as bigint) from classes) as smallest_class
    from counted
)

select * from final
