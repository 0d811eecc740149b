create or replace view reporting.rpt_total_persons as
select count(*) as total_persons
from transform.persons
