-- Persons and Gmail users per country (exact counts, the country as the address names it, grouped like the
-- report's top countries); a country of fewer than k persons is withheld, a Gmail count under k is null.
{%- set k = var('k_anonymity') %}

with

persons as (
    select * from {{ ref('trf_persons') }}
),

per_country as (
    select
        -- the first spelling among its Gmail users, as the report's top countries spell it (the oracle's)
        coalesce(min(case when is_gmail then country end), min(country)) as country,
        min(country_code) as first_country_code,
        max(country_code) as last_country_code,
        count(*) as persons,
        sum(case when is_gmail then 1 else 0 end) as gmail_users
    from persons
    group by country_normalised
),

final as (
    select
        country,
        case when first_country_code = last_country_code then first_country_code end as country_code,
        cast(persons as bigint) as persons,
        cast(case when gmail_users >= {{ k }} then gmail_users end as bigint) as gmail_users
    from per_country
    where persons >= {{ k }}
)

select * from final
