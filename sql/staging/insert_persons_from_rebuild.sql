-- The switch-over: the rebuilt generation becomes staging.persons (inside one transaction).
-- person_columns: the published columns, filled in from OUTPUT_COLUMNS (flows.anonymise.columns).
insert into staging.persons (
    {person_columns}, batch_id, run_id, first_merged_at, updated_at, key_fingerprint, generation_id
)
select
    {person_columns},
    batch_id,
    run_id,
    first_merged_at,
    updated_at,
    key_fingerprint,
    generation_id
from staging.persons_rebuild
