-- DuckDB: append a batch's quarantined records from the Arrow table registered as landed_quarantine.
insert into landing.quarantined_persons (
    person_key, quarantine_reason, page_number, record_index, page_seed,
    batch_id, run_id, loaded_at, key_fingerprint
)
select
    person_key,
    quarantine_reason,
    page_number,
    record_index,
    page_seed,
    :batch_id,
    :run_id,
    :loaded_at,
    :key_fingerprint as key_fingerprint
from landed_quarantine
