select
    quarantine_reason,
    count(*) as records
from reporting.rpt_quarantined
group by quarantine_reason
order by quarantine_reason
