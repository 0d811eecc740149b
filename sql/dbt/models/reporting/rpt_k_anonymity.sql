-- How the published persons are protected: persons exact, generalised, suppressed, and the smallest class.
with

persons as (
    select * from {{ ref('fct_persons') }}
),

classes as (
    select count(*) as class_size
    from persons
    where protection <> 'suppressed'
    group by gender, age_group, country_key, email_domain
),

counted as (
    select
        count(*) as persons,
        sum(case when protection = 'exact' then 1 else 0 end) as exact_persons,
        sum(case when protection = 'generalised' then 1 else 0 end) as generalised_persons,
        sum(case when protection = 'suppressed' then 1 else 0 end) as suppressed_persons
    from persons
),

final as (
    select
        {{ var('k_anonymity') }} as k,
        persons,
        coalesce(exact_persons, 0) as exact_persons,
        coalesce(generalised_persons, 0) as generalised_persons,
        coalesce(suppressed_persons, 0) as suppressed_persons,
        (select count(*) from classes) as classes,
        (select min(classes.class_size) from classes) as smallest_class
    from counted
)

select * from final
