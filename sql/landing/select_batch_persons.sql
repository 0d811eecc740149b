-- The batch as the warehouse holds it: what the validation gate audits before the merge.
-- person_columns: the published columns, filled in from OUTPUT_COLUMNS (flows.anonymise.columns).
select {person_columns}
from landing.persons
where run_id = :run_id and batch_id = :batch_id
