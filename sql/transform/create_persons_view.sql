-- Standardised persons: normalised country, Gmail flag and the age bounds of each age group.
create or replace view transform.persons as
with

staged as (
    select * from staging.persons
),

bins as (
    select
        staged.*,
        replace(replace(staged.age_group, '[', ''), ']', '') as age_range
    from staged
),

bounds as (
    select
        bins.*,
        cast(split_part(bins.age_range, '-', 1) as integer) as age_group_low,
        cast(split_part(bins.age_range, '-', 2) as integer) as age_max
    from bins
),

final as (
    select
        -- ids
        person_key,
        -- attributes
        gender,
        age_group,
        case when age_group_low = 1 then 0 else age_group_low end as age_min,
        age_max,
        email_domain,
        trim(country) as country,
        lower(trim(country)) as country_normalised,
        upper(trim(country_code)) as country_code,
        -- flags
        coalesce(lower(email_domain) in ('gmail.com', 'googlemail.com'), false) as is_gmail,
        -- dates and timestamps
        age_reference_date,
        first_merged_at,
        updated_at
    from bounds
)

select * from final
