-- Exact single figures over every published person, counted before any generalisation: the report's
-- total, Gmail users in Germany and Gmail users over 60 (totals over the population, not small groups).
with

persons as (
    select * from {{ ref('trf_persons') }}
),

counted as (
    select
        count(*) as persons,
        sum(case when is_gmail then 1 else 0 end) as gmail_users,
        sum(case when is_gmail and country_code = 'DE' then 1 else 0 end) as gmail_users_germany,
        sum(case when is_gmail and age_min > 60 then 1 else 0 end) as gmail_users_over_60
    from persons
),

final as (
    select
        cast(persons as bigint) as persons,
        cast(coalesce(gmail_users, 0) as bigint) as gmail_users,
        cast(coalesce(gmail_users_germany, 0) as bigint) as gmail_users_germany,
        cast(coalesce(gmail_users_over_60, 0) as bigint) as gmail_users_over_60
    from counted
)

select * from final
