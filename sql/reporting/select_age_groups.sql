select
    age_group,
    persons
from reporting.rpt_age_groups
order by age_min
