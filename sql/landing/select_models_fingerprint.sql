-- The fingerprint of the last successful dbt build.
select fingerprint
from landing.model_builds
where status = 'success'
order by built_at desc
limit 1
