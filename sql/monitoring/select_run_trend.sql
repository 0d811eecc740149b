-- The last runs of the trend view, newest first.
select
    run_id,
    measured_at,
    batches_merged,
    batches_rejected,
    received_records,
    landing_rows,
    staging_rows,
    analytics_rows,
    published_persons,
    quarantine_rate,
    duplicate_record_rate,
    schema_drift_fields,
    expectations_failed,
    max_null_rate,
    hours_since_last_merge,
    smallest_class,
    suppressed_persons,
    breaches,
    published_persons_change,
    quarantine_rate_change
from monitoring.run_trend
order by measured_at desc, run_id desc
limit :runs
