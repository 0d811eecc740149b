-- Gmail users older than 60 at the reference date: every age group starting above 60.
create or replace view reporting.rpt_gmail_over_60 as
select count(*) as gmail_over_60
from transform.persons
where is_gmail and age_min > 60
