-- The batches of one run as the audit trail holds them: counts and where they landed (no values).
select
    batch_id,
    status,
    persons,
    quarantined,
    extracted,
    landed_file
from landing.batches
where run_id = :run_id
order by batch_index
