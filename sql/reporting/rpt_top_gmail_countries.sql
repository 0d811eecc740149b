-- Countries with the most Gmail users; ties broken by country name ascending.
create or replace view reporting.rpt_top_gmail_countries as
with

gmail_users as (
    select * from transform.persons
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
)

select * from final
