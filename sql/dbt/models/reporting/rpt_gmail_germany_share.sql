-- Share of all persons who use Gmail and live in Germany (country code DE), in percent (exact).
with

persons as (
    select * from {{ ref('trf_persons') }}
),

counted as (
    select
        count(*) as total_persons,
        sum(case when is_gmail and country_code = 'DE' then 1 else 0 end) as gmail_germany_persons
    from persons
),

final as (
    select
        total_persons,
        coalesce(gmail_germany_persons, 0) as gmail_germany_persons,
        100.0 * coalesce(gmail_germany_persons, 0) / nullif(total_persons, 0) as gmail_germany_share_pct
    from counted
)

select * from final
