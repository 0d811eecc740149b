-- Gmail users older than 60 at the reference date: every age group starting above 60 (exact).
select gmail_users_over_60 as gmail_over_60
from {{ ref('agg_person_totals') }}
