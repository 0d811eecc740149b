select
    country,
    gmail_users
from reporting.rpt_top_gmail_countries
where country_rank <= :top_n
order by country_rank
