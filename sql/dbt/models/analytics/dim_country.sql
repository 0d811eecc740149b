-- Every published country value: a country (code and name), a region where generalised, '*' if suppressed.
with

published as (
    select distinct country_key from {{ ref('fct_persons') }}
),

countries as (
    select
        country_code,
        min(country) as country
    from {{ ref('trf_persons') }}
    group by country_code
),

regions as (
    select * from {{ ref('country_regions') }}
),

final as (
    select
        published.country_key,
        case
            when published.country_key = '*' then '*'
            else coalesce(countries.country, published.country_key)
        end as country_name,
        case
            when published.country_key = '*' then '*'
            when countries.country_code is null then published.country_key
            else coalesce(regions.region, 'Other')
        end as region,
        countries.country_code is null and published.country_key <> '*' as is_region
    from published
    left join countries on published.country_key = countries.country_code
    left join regions on published.country_key = regions.country_code
)

select * from final
