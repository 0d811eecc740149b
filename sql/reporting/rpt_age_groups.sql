create or replace view reporting.rpt_age_groups as
select
    age_group,
    min(age_min) as age_min,
    count(*) as persons
from transform.persons
group by age_group
