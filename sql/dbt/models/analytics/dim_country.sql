-- Every country fct_persons shows by its code, with its name and region, and the '*' member of suppressed
-- persons (a country generalised to its region has no code in fct_persons, only its region).
with

published as (
    select distinct country_code from {{ ref('fct_persons') }}
    where country_code <> '*'
),

countries as (
    select
        country_code,
        min(country) as country_name,
        min(region) as region
    from {{ ref('trf_persons') }}
    group by country_code
),

final as (
    select
        published.country_code,
        countries.country_name,
        countries.region
    from published
    inner join countries on published.country_code = countries.country_code
    union all
    select
        '*' as country_code,
        '*' as country_name,
        '*' as region
)

select * from final
