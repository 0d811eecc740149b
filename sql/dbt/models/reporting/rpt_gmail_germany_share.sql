-- Share of all persons who use Gmail and live in Germany (country code DE), in percent (exact).
with

totals as (
    select * from {{ ref('agg_person_totals') }}
),

final as (
    select
        persons as total_persons,
        gmail_users_germany as gmail_germany_persons,
        100.0 * gmail_users_germany / nullif(persons, 0) as gmail_germany_share_pct
    from totals
)

select * from final
