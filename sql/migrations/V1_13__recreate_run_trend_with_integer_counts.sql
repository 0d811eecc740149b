-- monitoring.run_trend again, with its counts as integers (V1_11 kept them as the metrics' doubles, so a
-- reader saw batches_merged 1.0): every count, the breaches and the change in published persons are bigints,
-- the rates and the hours since the last merge stay doubles. A plain view, the same SQL on DuckDB and
-- Snowflake. Its comments come from its description in sql/dbt/models/sources.yml, written at the next dbt
-- build (replacing a view drops them).
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
        cast(pivoted.batches_merged as bigint) as batches_merged,
        cast(pivoted.batches_rejected as bigint) as batches_rejected,
        cast(pivoted.received_records as bigint) as received_records,
        cast(pivoted.landing_rows as bigint) as landing_rows,
        cast(pivoted.staging_rows as bigint) as staging_rows,
        cast(pivoted.analytics_rows as bigint) as analytics_rows,
        cast(pivoted.published_persons as bigint) as published_persons,
        pivoted.quarantine_rate,
        pivoted.duplicate_record_rate,
        cast(pivoted.schema_drift_fields as bigint) as schema_drift_fields,
        cast(pivoted.expectations_failed as bigint) as expectations_failed,
        pivoted.max_null_rate,
        pivoted.hours_since_last_merge,
        cast(pivoted.smallest_class as bigint) as smallest_class,
        cast(pivoted.suppressed_persons as bigint) as suppressed_persons,
        coalesce(breaches.breaches, 0) as breaches,
        cast(pivoted.published_persons - lag(pivoted.published_persons) over (
            order by pivoted.measured_at, pivoted.run_id
        ) as bigint) as published_persons_change,
        pivoted.quarantine_rate - lag(pivoted.quarantine_rate) over (
            order by pivoted.measured_at, pivoted.run_id
        ) as quarantine_rate_change
    from pivoted
    left join breaches on pivoted.run_id = breaches.run_id
)

select * from final
