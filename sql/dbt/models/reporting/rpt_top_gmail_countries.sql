-- Countries with the most Gmail users (exact counts), ties by country name; fewer than k users are withheld.
with

per_country as (
    select * from {{ ref('agg_persons_by_country') }}
    where gmail_users is not null
),

final as (
    select
        country,
        gmail_users,
        row_number() over (order by gmail_users desc, country asc) as country_rank
    from per_country
)

select * from final
