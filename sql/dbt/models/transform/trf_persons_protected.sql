-- The published quasi-identifiers of every person, generalised until each class holds at least k persons.
-- Rule, in order: (1) a country with fewer than k persons becomes its region and an email domain with fewer
-- than k persons becomes 'other'; (2) a person whose class (gender, age group, country, domain) is still
-- smaller than k gets the region; (3) then 'other' as domain; (4) a class still smaller than k is suppressed:
-- all four quasi-identifiers become '*'.
{{ config(alias='persons_protected') }}
{%- set k = var('k_anonymity') %}

with

persons as (
    select * from {{ ref('trf_persons') }}
),

regions as (
    select * from {{ ref('country_regions') }}
),

sized as (
    select
        persons.person_key,
        persons.gender,
        persons.age_group,
        persons.country_code,
        persons.email_domain,
        coalesce(regions.region, 'Other') as region,
        count(*) over (partition by persons.country_code) as country_persons,
        count(*) over (partition by persons.email_domain) as domain_persons
    from persons
    left join regions on persons.country_code = regions.country_code
),

rare_values as (
    select
        *,
        case when country_persons >= {{ k }} then country_code else region end as country_1,
        case when domain_persons >= {{ k }} then email_domain else 'other' end as domain_1
    from sized
),

small_countries as (
    select
        *,
        case
            when count(*) over (partition by gender, age_group, country_1, domain_1) >= {{ k }} then country_1
            else region
        end as country_2
    from rare_values
),

small_domains as (
    select
        *,
        case
            when count(*) over (partition by gender, age_group, country_2, domain_1) >= {{ k }} then domain_1
            else 'other'
        end as domain_3
    from small_countries
),

classes as (
    select
        *,
        count(*) over (partition by gender, age_group, country_2, domain_3) as class_size
    from small_domains
),

final as (
    select
        -- ids
        person_key,
        -- published quasi-identifiers
        case when class_size >= {{ k }} then gender else '*' end as gender,
        case when class_size >= {{ k }} then age_group else '*' end as age_group,
        case when class_size >= {{ k }} then country_2 else '*' end as country_key,
        case when class_size >= {{ k }} then domain_3 else '*' end as email_domain,
        -- how the person is published
        case
            when class_size < {{ k }} then 'suppressed'
            when country_2 <> country_code or domain_3 <> email_domain then 'generalised'
            else 'exact'
        end as protection,
        case when class_size >= {{ k }} then class_size end as class_size
    from classes
)

select * from final
