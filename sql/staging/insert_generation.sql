insert into staging.generations (
    generation_id, key_fingerprint, reference_date, policy_version, status, run_id, created_at
)
values (:generation_id, :key_fingerprint, :reference_date, :policy_version, :status, :run_id, :created_at)
