-- Rows per layer at the end of a run: this run's landing rows, then the staged state (the published rows come
-- from the report's k-anonymity figures: counting analytics.fct_persons again would compute it again).
select
    'landing.persons' as layer,
    count(*) as layer_rows
from landing.persons
where run_id = :run_id
union all
select
    'landing.quarantined_persons' as layer,
    count(*) as layer_rows
from landing.quarantined_persons
where run_id = :run_id
union all
select
    'staging.persons' as layer,
    count(*) as layer_rows
from staging.persons
