-- Persons held back in the published state and not published since (the report's quarantined figure).
select coalesce(sum(records), 0) as quarantined
from reporting.rpt_quarantine_reasons
