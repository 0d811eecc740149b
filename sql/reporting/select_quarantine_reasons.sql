select
    quarantine_reason,
    records
from reporting.rpt_quarantine_reasons
order by quarantine_reason
