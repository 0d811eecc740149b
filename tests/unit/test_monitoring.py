"""The monitor's pure parts (rates, column profiles, run aggregates, breaches), its SQL on DuckDB (the
migration, the trend view) and the automation files (filled in and validated as Prefect automations)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from deployments.alerting import automation_values, fill_placeholders, load_automations
from flows.landing.files import LandedBatch
from flows.monitoring.metrics import (
    ALL,
    Breach,
    Metric,
    Thresholds,
    batch_metrics,
    column_metrics,
    drift_metrics,
    find_breaches,
    hours_between,
    quarantine_metrics,
    rate,
    run_metrics,
)
from flows.monitoring.monitor import thresholds_of
from flows.runtime.alerts import RUN_FAILED_AUTOMATION
from flows.settings import PipelineSettings
from flows.sql_files import load_sql
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse
from flows.warehouse.quality import METRIC_COLUMNS

THRESHOLDS = Thresholds(
    max_quarantine_rate=0.05, max_duplicate_rate=0.01, max_schema_drift_fields=0, freshness_hours=26
)


def test_rates_are_shares_and_an_empty_whole_is_zero() -> None:
    assert rate(1, 4) == 0.25
    assert rate(0, 0) == 0.0


def test_quarantine_per_reason_and_over_all_reasons() -> None:
    metrics = quarantine_metrics({"invalid_email": 3, "missing_country": 1}, 40, "b1")
    values = {(m.metric, m.subject): m.value for m in metrics}
    assert values == {
        ("received_records", "landing.persons"): 40.0,
        ("quarantined_records", "invalid_email"): 3.0,
        ("quarantine_rate", "invalid_email"): 0.075,
        ("quarantined_records", "missing_country"): 1.0,
        ("quarantine_rate", "missing_country"): 0.025,
        ("quarantine_rate", ALL): 0.1,
    }
    assert {m.batch_id for m in metrics} == {"b1"}


def test_schema_drift_counts_records_per_unknown_field_name() -> None:
    metrics = drift_metrics({"ssn": 10, "address.county": 10})
    assert [(m.metric, m.subject, m.value) for m in metrics] == [
        ("unknown_field_records", "address.county", 10.0),
        ("unknown_field_records", "ssn", 10.0),
        ("schema_drift_fields", "source", 2.0),
    ]


def test_null_and_duplicate_value_rates_per_column() -> None:
    batch = pa.table(
        {"person_key": ["a", "b", "c", "d"], "gender": ["female", "female", None, None]},
    )
    values = {(m.metric, m.subject): m.value for m in column_metrics(batch)}
    assert values == {
        ("null_rate", "person_key"): 0.0,
        ("duplicate_value_rate", "person_key"): 0.0,
        ("null_rate", "gender"): 0.5,
        ("duplicate_value_rate", "gender"): 0.5,  # one repeated value, one repeated null
    }
    empty = {(m.metric, m.subject): m.value for m in column_metrics(batch.slice(0, 0))}
    assert set(empty.values()) == {0.0}


def test_a_batch_records_rows_quarantine_drift_columns_and_every_expectation() -> None:
    landed = LandedBatch(
        batch_id="b1",
        batch_index=0,
        landed_by_run="r1",
        persons_key="k",
        quarantine_key="q",
        persons=2,
        quarantined=1,
        extracted=4,
        duplicates=1,
        persons_sha256="",
        reasons={"invalid_birthday": 1},
        unknown_fields={"ssn": 4},
        cleaned={"country": 2},
    )
    batch = pa.table({"person_key": ["a", "b"]})
    outcomes = [("person_key_unique", True, 0), ("country_holds_no_email_address", False, 3)]
    values = {(m.metric, m.subject): m.value for m in batch_metrics(landed, batch, outcomes)}
    assert values[("layer_rows", "landing.persons")] == 2.0
    assert values[("layer_rows", "landing.quarantined_persons")] == 1.0
    assert values[("quarantine_rate", ALL)] == 0.25
    assert values[("duplicate_record_rate", "person_key")] == 0.25
    assert values[("unknown_field_records", "ssn")] == 4.0
    assert values[("cleaned_values", "country")] == 2.0
    assert values[("expectation_success", "person_key_unique")] == 1.0
    assert values[("expectation_success", "country_holds_no_email_address")] == 0.0
    assert values[("expectation_unexpected", "country_holds_no_email_address")] == 3.0


def test_a_run_sums_its_landed_batches_and_counts_the_rejected() -> None:
    batches = [
        {"batch_id": "b1", "merged": True, "extracted": 100, "duplicates": 2, "reasons": {"x": 4},
         "unknown_fields": {"ssn": 100}, "cleaned": {"country": 3}},
        {"batch_id": "b2", "merged": False, "extracted": 100, "duplicates": 0, "reasons": {"x": 1, "y": 1},
         "unknown_fields": {"ssn": 100, "middlename": 100}},
        {"batch_id": "b3", "requested": 100, "merged": False, "rejected": True},  # never landed
    ]  # fmt: skip
    k = {"k": 5, "smallest_class": 7, "suppressed_persons": None}
    metrics = run_metrics(batches, {"x": 5, "y": 1}, {"staging.persons": 190}, 1, 0.0, 2.5, k)
    values = {(m.metric, m.subject): m.value for m in metrics}
    assert {m.batch_id for m in metrics} == {None}
    assert values[("batches_merged", "landing.batches")] == 1.0
    assert values[("batches_rejected", "landing.batches")] == 2.0
    assert values[("received_records", "landing.persons")] == 200.0
    assert values[("quarantine_rate", ALL)] == 0.03
    assert values[("quarantined_records", "x")] == 5.0
    assert values[("duplicate_record_rate", "person_key")] == 0.01
    assert values[("schema_drift_fields", "source")] == 2.0
    assert values[("cleaned_values", "country")] == 3.0
    assert values[("layer_rows", "staging.persons")] == 190.0
    assert values[("hours_since_last_merge", "staging.persons")] == 2.5
    assert values[("k_anonymity", "smallest_class")] == 7.0
    assert ("k_anonymity", "suppressed_persons") not in values  # unknown, not zero


def test_a_runs_quarantine_is_what_the_report_counts_not_the_records_the_batches_held_back() -> None:
    # 246 entries that are no records, each quarantined on its own: the report and the run agree, whatever
    # the anonymiser's record counts said (they once collapsed into one key and read as 284 duplicates).
    batches = [{"batch_id": "b1", "merged": True, "extracted": 2000, "duplicates": 0,
                "reasons": {"birthday_unparseable": 158, "not_a_record": 1}}]  # fmt: skip
    first_quarantined = {"birthday_unparseable": 158, "not_a_record": 246}
    metrics = run_metrics(batches, first_quarantined, {}, 0, None, None, {})
    values = {(m.metric, m.subject): m.value for m in metrics}
    assert values[("quarantined_records", "not_a_record")] == 246.0
    assert values[("quarantine_rate", ALL)] == (158 + 246) / 2000
    later = run_metrics(batches, {}, {}, 0, None, None, {})  # the same persons, quarantined by an earlier run
    assert {(m.metric, m.subject): m.value for m in later}[("quarantine_rate", ALL)] == 0.0


def test_a_breach_is_a_run_metric_above_its_threshold() -> None:
    metrics = [
        Metric("quarantine_rate", ALL, 0.05),  # at the threshold: no breach
        Metric("quarantine_rate", "invalid_email", 0.9),  # per reason: recorded, not a threshold
        Metric("duplicate_record_rate", "person_key", 0.02),
        Metric("schema_drift_fields", "source", 1.0),
        Metric("schema_drift_fields", "source", 3.0, batch_id="b1"),  # a batch's: the run's counts
        Metric("hours_since_last_merge", "staging.persons", 30.0),
    ]
    assert find_breaches(metrics, THRESHOLDS) == [
        Breach("duplicate_record_rate", "person_key", 0.02, 0.01),
        Breach("schema_drift_fields", "source", 1.0, 0.0),
        Breach("hours_since_last_merge", "staging.persons", 30.0, 26.0),
    ]
    assert find_breaches([Metric("hours_since_last_merge", "staging.persons", 25.9)], THRESHOLDS) == []


def test_hours_between_is_never_negative() -> None:
    start = datetime(2026, 6, 1, 6, 0)
    assert hours_between(start, start + timedelta(hours=26, minutes=30)) == 26.5
    assert hours_between(start, start - timedelta(minutes=1)) == 0.0


def test_thresholds_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONS_MONITOR_MAX_QUARANTINE_RATE", "0.2")
    monkeypatch.setenv("PERSONS_MONITOR_MAX_SCHEMA_DRIFT_FIELDS", "2")
    thresholds = thresholds_of(PipelineSettings())
    assert (thresholds.max_quarantine_rate, thresholds.max_schema_drift_fields) == (0.2, 2)
    assert thresholds.freshness_hours == 26.0
    monkeypatch.setenv("PERSONS_MONITOR_MAX_QUARANTINE_RATE", "1.5")
    with pytest.raises(ValueError, match=r"monitoring\.max_quarantine_rate"):
        PipelineSettings()


def test_the_insert_binds_the_columns_in_order() -> None:
    sql, values = load_sql("monitoring/insert_metric.sql").bind(**{c: c for c in METRIC_COLUMNS})
    assert values == list(METRIC_COLUMNS) and sql.count("?") == len(METRIC_COLUMNS)


def _insert(connection: duckdb.DuckDBPyConnection, run_id: str, metrics: list[Metric], at: datetime) -> None:
    sql, _ = load_sql("monitoring/insert_metric.sql").bind(**dict.fromkeys(METRIC_COLUMNS))
    connection.executemany(sql, [[run_id, m.batch_id, m.metric, m.subject, m.value, at] for m in metrics])


def test_the_trend_view_gives_one_row_per_run_with_the_change_since_the_last(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
    assert "migrations/V1_11__create_monitoring.sql" in warehouse.migrate()
    at = datetime(2026, 6, 1, 6)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        for index, (run_id, published, quarantine) in enumerate((("r1", 100, 0.1), ("r2", 150, 0.04))):
            metrics = [
                Metric("layer_rows", "reporting.total_persons", published),
                Metric("quarantine_rate", ALL, quarantine),
                Metric("quarantine_rate", ALL, 0.9, batch_id="b1"),  # a batch's: not the run's
                Metric("batches_merged", "landing.batches", 2),
            ]
            _insert(connection, run_id, metrics, at + timedelta(days=index))
        connection.execute(
            "insert into monitoring.breaches values ('r1', 'quarantine_rate', 'all', 0.1, 0.05, ?)", [at]
        )
        rows = connection.execute(
            "select run_id, published_persons, quarantine_rate, batches_merged, breaches, "
            "published_persons_change, round(quarantine_rate_change, 6) from monitoring.run_trend "
            "order by measured_at"
        ).fetchall()
        newest = connection.execute(*load_sql("monitoring/select_run_trend.sql").bind(runs=1)).fetchall()
    assert rows == [("r1", 100.0, 0.1, 2.0, 1, None, None), ("r2", 150.0, 0.04, 2.0, 0, 50.0, -0.06)]
    assert [row[0] for row in newest] == ["r2"]
    assert warehouse.migrate() == []  # applied once


def test_the_automation_files_are_valid_prefect_automations() -> None:
    block = "00000000-0000-0000-0000-00000000b10c"
    automations = {a.name: a for a in load_automations(automation_values(block, freshness_hours=26))}
    assert set(automations) == {"persons-run-failed", "persons-threshold-breach", "persons-freshness"}
    assert RUN_FAILED_AUTOMATION in automations  # the name the failure hook looks for before it alerts
    failed, breach, fresh = (
        automations[name].trigger
        for name in ("persons-run-failed", "persons-threshold-breach", "persons-freshness")
    )
    assert failed.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    assert breach.expect == {"persons.monitoring.breach"}
    assert fresh.posture == "Proactive" and fresh.after == fresh.expect == {"persons.batch.merged"}
    assert fresh.within == timedelta(hours=26) and fresh.for_each == {"prefect.resource.id"}
    for automation in automations.values():
        (action,) = automation.actions
        assert action.type == "call-webhook" and str(action.block_document_id) == block
    short = load_automations(automation_values(block, freshness_hours=26, within_s=10))
    assert {a.trigger.within for a in short if a.name == "persons-freshness"} == {timedelta(seconds=10)}


def test_a_missing_automation_value_is_named() -> None:
    with pytest.raises(KeyError, match="PERSONS_X"):
        fill_placeholders("within: ${PERSONS_X}", {})
