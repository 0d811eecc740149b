-- Data quality over time (the role of Snowflake's data metric functions), counts and rates only, never a
-- value: one row per run, batch (null for the run as a whole), metric and subject (a layer, a quarantine
-- reason, a column, an unknown source field's name, an expectation), written by flows/monitoring.
create schema if not exists monitoring;

create table if not exists monitoring.metrics (
    run_id varchar not null,
    batch_id varchar,
    metric varchar not null,
    subject varchar not null,
    metric_value double not null,
    measured_at timestamp not null
);

-- A run-level metric beyond its threshold (PERSONS_MONITOR_*); each one was also emitted as a Prefect event.
create table if not exists monitoring.breaches (
    run_id varchar not null,
    metric varchar not null,
    subject varchar not null,
    metric_value double not null,
    threshold double not null,
    detected_at timestamp not null
);

-- The trend over runs: one row per run, oldest first, with the change since the run before.
create or replace view monitoring.run_trend as
with

run_metrics as (
    select * from monitoring.metrics
    where batch_id is null
),

breaches as (
    select
        run_id,
        count(*) as breaches
    from monitoring.breaches
    group by run_id
),

pivoted as (
    select
        run_id,
        min(measured_at) as measured_at,
        max(case when metric = 'batches_merged' then metric_value end) as batches_merged,
        max(case when metric = 'batches_rejected' then metric_value end) as batches_rejected,
        max(case when metric = 'received_records' then metric_value end) as received_records,
        max(
            case when metric = 'layer_rows' and subject = 'landing.persons' then metric_value end
        ) as landing_rows,
        max(
            case when metric = 'layer_rows' and subject = 'staging.persons' then metric_value end
        ) as staging_rows,
        max(
            case when metric = 'layer_rows' and subject = 'analytics.fct_persons' then metric_value end
        ) as analytics_rows,
        max(
            case when metric = 'layer_rows' and subject = 'reporting.total_persons' then metric_value end
        ) as published_persons,
        max(
            case when metric = 'quarantine_rate' and subject = 'all' then metric_value end
        ) as quarantine_rate,
        max(case when metric = 'duplicate_record_rate' then metric_value end) as duplicate_record_rate,
        max(case when metric = 'schema_drift_fields' then metric_value end) as schema_drift_fields,
        max(case when metric = 'expectations_failed' then metric_value end) as expectations_failed,
        max(case when metric = 'max_null_rate' then metric_value end) as max_null_rate,
        max(case when metric = 'hours_since_last_merge' then metric_value end) as hours_since_last_merge,
        max(
            case when metric = 'k_anonymity' and subject = 'smallest_class' then metric_value end
        ) as smallest_class,
        max(
            case when metric = 'k_anonymity' and subject = 'suppressed_persons' then metric_value end
        ) as suppressed_persons
    from run_metrics
    group by run_id
),

final as (
    select
        pivoted.run_id,
        pivoted.measured_at,
        pivoted.batches_merged,
        pivoted.batches_rejected,
        pivoted.received_records,
        pivoted.landing_rows,
        pivoted.staging_rows,
        pivoted.analytics_rows,
        pivoted.published_persons,
        pivoted.quarantine_rate,
        pivoted.duplicate_record_rate,
        pivoted.schema_drift_fields,
        pivoted.expectations_failed,
        pivoted.max_null_rate,
        pivoted.hours_since_last_merge,
        pivoted.smallest_class,
        pivoted.suppressed_persons,
        coalesce(breaches.breaches, 0) as breaches,
        pivoted.published_persons - lag(pivoted.published_persons) over (
            order by pivoted.measured_at, pivoted.run_id
        ) as published_persons_change,
        pivoted.quarantine_rate - lag(pivoted.quarantine_rate) over (
            order by pivoted.measured_at, pivoted.run_id
        ) as quarantine_rate_change
    from pivoted
    left join breaches on pivoted.run_id = breaches.run_id
)

select * from final
