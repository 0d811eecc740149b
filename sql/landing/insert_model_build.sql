insert into landing.model_builds (
    fingerprint, k_anonymity, status, run_id, models, tests, seconds, built_at
)
values (:fingerprint, :k_anonymity, :status, :run_id, :models, :tests, :seconds, :built_at)
