-- Persons per reason that this run quarantined first in the published state: transform.quarantined, the
-- relation the report's quarantined and quarantine_reasons are read from too, so the three always agree.
select
    quarantine_reason,
    count(*) as records
from transform.quarantined
where first_quarantined_by_run = :run_id
group by quarantine_reason
order by quarantine_reason
