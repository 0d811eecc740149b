"""The monitor's I/O: metrics and breaches into `monitoring.*`, events to Prefect (thin; the logic is in
flows.monitoring.metrics)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from flows.monitoring import events
from flows.monitoring.metrics import (
    Breach,
    Metric,
    Thresholds,
    batch_metrics,
    find_breaches,
    hours_between,
    run_metrics,
)
from flows.settings import PipelineSettings
from flows.warehouse.base import Cursor, Warehouse, utc_now

if TYPE_CHECKING:
    from flows.gate.validation import GateResult
    from flows.landing.files import LandedBatch
    from flows.report.render import Report

# The bind parameters of sql/monitoring/insert_metric.sql, in the order they appear there.
METRIC_COLUMNS = ("run_id", "batch_id", "metric", "subject", "metric_value", "measured_at")


def thresholds_of(settings: PipelineSettings) -> Thresholds:
    """The PERSONS_MONITOR_* settings as thresholds."""
    return Thresholds(
        max_quarantine_rate=settings.monitor_max_quarantine_rate,
        max_duplicate_rate=settings.monitor_max_duplicate_rate,
        max_schema_drift_fields=settings.monitor_max_schema_drift_fields,
        freshness_hours=settings.monitor_freshness_hours,
    )


def _insert_metrics(
    warehouse: Warehouse, cursor: Cursor, run_id: str, metrics: Sequence[Metric], at: datetime
) -> None:
    """All metrics with one statement, the rows bound in METRIC_COLUMNS' order."""
    sql, _ = warehouse.sql("monitoring/insert_metric").bind(**dict.fromkeys(METRIC_COLUMNS))
    rows = [(run_id, m.batch_id, m.metric, m.subject, m.value, at) for m in metrics]
    cursor.run_many(sql, rows)


def record_batch_quality(
    warehouse: Warehouse, run_id: str, landed: LandedBatch, batch: pa.Table, result: GateResult
) -> int:
    """Record a validated batch's metrics (rows, quarantine, drift, columns, expectations); their number."""
    metrics = batch_metrics(landed, batch, result.outcomes)
    with warehouse.cursor() as cursor, cursor.transaction():
        cursor.execute(
            warehouse.sql("monitoring/delete_batch_metrics"), run_id=run_id, batch_id=landed.batch_id
        )
        _insert_metrics(warehouse, cursor, run_id, metrics, utc_now())
    return len(metrics)


def _warehouse_counts(
    warehouse: Warehouse, run_id: str
) -> tuple[dict[str, int], dict[str, int], int, Any, Any]:
    """Persons per reason the run quarantined first, rows per layer, failed expectations and the largest
    null rate of the run, the last merge."""
    with warehouse.cursor() as cursor:
        reasons = cursor.execute(warehouse.sql("monitoring/select_run_quarantine"), run_id=run_id)
        layers = cursor.execute(warehouse.sql("monitoring/select_layer_rows"), run_id=run_id)
        failed, max_null = cursor.execute(
            warehouse.sql("monitoring/select_run_batch_summary"), run_id=run_id
        )[0]
        (last_merged,) = cursor.execute(warehouse.sql("monitoring/select_last_merged_at"))[0]
    quarantined = {str(reason): int(records) for reason, records in reasons}
    layer_rows = {str(layer): int(rows) for layer, rows in layers}
    return quarantined, layer_rows, int(failed or 0), max_null, last_merged


@dataclass(frozen=True)
class RunSubject:
    """The run whose quality is recorded: its id, and the warehouse its events are about."""

    run_id: str
    environment: str
    warehouse: Warehouse

    @property
    def resource(self) -> dict[str, str]:
        """The run's warehouse as the resource of its events."""
        return events.warehouse_resource(self.environment, self.warehouse.location)


def announce_merge(subject: RunSubject, batch_id: str, persons: int) -> None:
    """`persons.batch.merged` as each batch is merged (the freshness automation's clock restarts then, so a
    run that dies later still counts for the batches it merged)."""
    payload = {"run_id": subject.run_id, "batch_id": batch_id, "persons": persons}  # the event has its time
    events.emit(events.BATCH_MERGED, subject.resource, payload)


def record_run_quality(
    subject: RunSubject,
    thresholds: Thresholds,
    batches: Sequence[Mapping[str, Any]],
    problems: Sequence[str],
    report: Report,
) -> list[Breach]:
    """Record the run's metrics (its batches as the manifest lists them), check them against the
    thresholds, emit breach and failure events."""
    warehouse, run_id = subject.warehouse, subject.run_id
    now = utc_now()
    quarantined, layer_rows, failed, max_null, last_merged = _warehouse_counts(warehouse, run_id)
    layer_rows["reporting.total_persons"] = report.total_persons
    published = report.k_anonymity.get("persons")  # rows of analytics.fct_persons, as the report counted them
    if published is not None:
        layer_rows["analytics.fct_persons"] = published
    metrics = run_metrics(
        batches,
        quarantined,
        layer_rows,
        failed,
        None if max_null is None else float(max_null),
        hours_between(last_merged, now) if last_merged is not None else None,
        report.k_anonymity,
    )
    breaches = find_breaches(metrics, thresholds)
    with warehouse.cursor() as cursor, cursor.transaction():
        cursor.execute(warehouse.sql("monitoring/delete_run_metrics"), run_id=run_id)
        _insert_metrics(warehouse, cursor, run_id, metrics, now)
        for breach in breaches:
            cursor.execute(
                warehouse.sql("monitoring/insert_breach"),
                run_id=run_id,
                metric=breach.metric,
                subject=breach.subject,
                metric_value=breach.value,
                threshold=breach.threshold,
                detected_at=now,
            )
    resource = subject.resource
    for breach in breaches:
        events.emit(
            events.BREACH,
            resource,
            {
                "run_id": run_id,
                "metric": breach.metric,
                "subject": breach.subject,
                "value": breach.value,
                "threshold": breach.threshold,
            },
        )
    if problems:
        events.emit(
            events.RUN_FAILED,
            resource,
            {"run_id": run_id, "metric": "batches_not_published", "value": len(problems), "threshold": 0},
        )
    return breaches
