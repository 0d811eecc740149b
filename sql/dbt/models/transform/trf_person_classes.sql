-- The published quasi-identifiers of every combination of them that persons hold, with its persons: the
-- k-anonymity rule, written once for transform.persons_protected (which joins it back to the persons) and
-- reporting.rpt_k_anonymity (which counts it, without touching a person again). Ephemeral: inlined where it
-- is used, so it adds no relation to the warehouse.
-- Rule, in order: (1) a country with fewer than k persons becomes its region and an email domain with fewer
-- than k persons becomes 'other'; (2) a person whose class (gender, age group, country, domain) is still
-- smaller than k gets the region; (3) then 'other' as domain; (4) a class still smaller than k is suppressed:
-- all four quasi-identifiers become '*'.
-- Every step depends only on a person's quasi-identifiers, so the rule runs on their distinct combinations,
-- each with its persons (tests/integration/test_dbt_models.py checks it against counting over every person at
-- each step). Rare email domains keep the combinations many (2,651,245 for 5,000,000 of the twin's persons).
-- The persons are read by reference in each step, not through one shared CTE: DuckDB materialises a CTE read
-- more than once, every person with every column, which made a read 5x slower (3,000,000 persons:
-- 6.1 s -> 1.2 s).
{{ config(materialized='ephemeral') }}
{%- set k = var('k_anonymity') %}

with

country_sizes as (
    select
        country_code,
        count(*) as persons
    from {{ ref('trf_persons') }}
    group by country_code
),

domain_sizes as (
    select
        email_domain,
        count(*) as persons
    from {{ ref('trf_persons') }}
    group by email_domain
),

combinations as (
    select
        gender,
        age_group,
        country_code,
        region,
        email_domain,
        count(*) as persons
    from {{ ref('trf_persons') }}
    group by gender, age_group, country_code, region, email_domain
),

rare_values as (
    select
        combinations.gender,
        combinations.age_group,
        combinations.country_code,
        combinations.email_domain,
        combinations.persons,
        combinations.region,
        case
            when country_sizes.persons >= {{ k }} then combinations.country_code
            else combinations.region
        end as country_1,
        case
            when domain_sizes.persons >= {{ k }} then combinations.email_domain
            else 'other'
        end as domain_1
    from combinations
    inner join country_sizes on combinations.country_code = country_sizes.country_code
    inner join domain_sizes on combinations.email_domain = domain_sizes.email_domain
),

small_countries as (
    select
        *,
        case
            when sum(persons) over (partition by gender, age_group, country_1, domain_1) >= {{ k }}
                then country_1
            else region
        end as country_2
    from rare_values
),

small_domains as (
    select
        *,
        case
            when sum(persons) over (partition by gender, age_group, country_2, domain_1) >= {{ k }}
                then domain_1
            else 'other'
        end as domain_3
    from small_countries
),

classes as (
    select
        *,
        sum(persons) over (partition by gender, age_group, country_2, domain_3) as class_size
    from small_domains
),

published as (
    select
        -- the combination, as the persons hold it, and how many persons hold it
        persons,
        gender,
        age_group,
        country_code,
        email_domain,
        -- published quasi-identifiers
        case when class_size >= {{ k }} then gender else '*' end as published_gender,
        case when class_size >= {{ k }} then age_group else '*' end as published_age_group,
        -- the country's code where it is kept, null where it became its region
        case
            when class_size < {{ k }} then '*'
            when country_2 = country_code then country_code
        end as published_country_code,
        case when class_size >= {{ k }} then region else '*' end as published_region,
        case when class_size >= {{ k }} then domain_3 else '*' end as published_email_domain,
        -- how the persons of the combination are published
        case
            when class_size < {{ k }} then 'suppressed'
            when country_2 <> country_code or domain_3 <> email_domain then 'generalised'
            else 'exact'
        end as protection,
        case when class_size >= {{ k }} then class_size end as class_size
    from classes
)

select * from published
