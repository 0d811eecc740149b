-- Records the gate's verdict: status 'validated' or 'rejected' (a rejected batch stays quarantined).
update landing.batches
set
    status = :status,
    failed_expectations = :failed_expectations,
    data_docs = :data_docs,
    validated_at = :validated_at
where run_id = :run_id and batch_id = :batch_id
