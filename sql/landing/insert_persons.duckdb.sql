-- DuckDB: append a landed batch from the Arrow table registered as landed_persons.
-- person_columns: the published columns, filled in from OUTPUT_COLUMNS (flows.anonymise.columns).
insert into landing.persons ({person_columns}, batch_id, run_id, loaded_at, key_fingerprint)
select
    {person_columns},
    :batch_id,
    :run_id,
    :loaded_at,
    :key_fingerprint as key_fingerprint
from landed_persons
