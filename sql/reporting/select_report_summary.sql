select
    totals.total_persons,
    germany_share.gmail_germany_share_pct,
    over_60.gmail_over_60,
    (
        select coalesce(sum(reasons.records), 0) from reporting.rpt_quarantine_reasons as reasons
    ) as quarantined,
    (select count(*) from reporting.rpt_rejected_batches) as rejected_batches
from reporting.rpt_total_persons as totals
cross join reporting.rpt_gmail_germany_share as germany_share
cross join reporting.rpt_gmail_over_60 as over_60
