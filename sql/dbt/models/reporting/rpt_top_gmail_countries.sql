-- Countries with the most Gmail users (exact counts), ties by country name; fewer than k users are withheld.
with

gmail_users as (
    select * from {{ ref('trf_persons') }}
    where is_gmail
),

per_country as (
    select
        min(country) as country,
        count(*) as gmail_users
    from gmail_users
    group by country_normalised
),

final as (
    select
        country,
        gmail_users,
        row_number() over (order by gmail_users desc, country asc) as country_rank
    from per_country
    where gmail_users >= {{ var('k_anonymity') }}
)

select * from final
