-- How the published persons are protected: persons exact, generalised, suppressed, and the smallest class.
-- One pass over analytics.fct_persons (each read of it computes the generalisation): the persons per
-- published class and protection, then everything from those rows.
with

grouped as (
    select
        gender,
        age_group,
        country_code,
        region,
        email_domain,
        protection,
        count(*) as persons
    from {{ ref('fct_persons') }}
    group by gender, age_group, country_code, region, email_domain, protection
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
