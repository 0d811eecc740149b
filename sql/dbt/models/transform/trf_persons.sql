-- Standardised persons: normalised country, its region, Gmail flag and the age bounds of each age group
-- (not published).
{{ config(alias='persons') }}

with

staged as (
    select * from {{ source('staging', 'persons') }}
),

age_groups as (
    select * from {{ ref('age_groups') }}
),

regions as (
    select * from {{ ref('country_regions') }}
),

final as (
    select
        -- ids
        staged.person_key,
        -- attributes
        staged.gender,
        staged.age_group,
        age_groups.age_min,
        age_groups.age_max,
        staged.email_domain,
        trim(staged.country) as country,
        lower(trim(staged.country)) as country_normalised,
        upper(trim(staged.country_code)) as country_code,
        coalesce(regions.region, 'Other') as region,
        -- flags
        coalesce(lower(staged.email_domain) in {{ gmail_domains() }}, false) as is_gmail,
        -- dates and timestamps
        staged.age_reference_date,
        staged.first_merged_at,
        staged.updated_at
    from staged
    left join age_groups on staged.age_group = age_groups.age_group
    left join regions on upper(trim(staged.country_code)) = regions.country_code
)

select * from final
