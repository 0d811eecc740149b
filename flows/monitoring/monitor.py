"""The monitor's I/O: metrics and breaches into `monitoring.*`, events to Prefect (thin; the logic is in
flows.monitoring.metrics)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from flows.monitoring import prefect_events as events
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
from flows.warehouse import quality
from flows.warehouse.base import Warehouse, utc_now
from flows.warehouse.quality import MetricRow

if TYPE_CHECKING:
    from flows.gate.validation import GateResult
    from flows.landing.files import LandedBatch
    from flows.report.render import Report


def thresholds_of(settings: PipelineSettings) -> Thresholds:
    """The PERSONS_MONITOR_* settings as thresholds."""
    return Thresholds(
        max_quarantine_rate=settings.monitoring.max_quarantine_rate,
        max_duplicate_rate=settings.monitoring.max_duplicate_rate,
        max_schema_drift_fields=settings.monitoring.max_schema_drift_fields,
        freshness_hours=settings.monitoring.freshness_hours,
    )


def _rows(metrics: Sequence[Metric]) -> list[MetricRow]:
    return [(m.batch_id, m.metric, m.subject, m.value) for m in metrics]


def record_batch_quality(
    warehouse: Warehouse, run_id: str, landed: LandedBatch, batch: pa.Table, result: GateResult
) -> int:
    """Record a validated batch's metrics (rows, quarantine, drift, columns, expectations); their number."""
    metrics = batch_metrics(landed, batch, result.outcomes)
    quality.replace_batch_metrics(warehouse, run_id, landed.batch_id, _rows(metrics), utc_now())
    return len(metrics)


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
    counts = quality.run_counts(warehouse, run_id)
    layer_rows = dict(counts.layer_rows)
    layer_rows["reporting.total_persons"] = report.total_persons
    published = report.k_anonymity.get("persons")  # rows of analytics.fct_persons, as the report counted them
    if published is not None:
        layer_rows["analytics.fct_persons"] = published
    metrics = run_metrics(
        batches,
        counts.quarantined,
        layer_rows,
        counts.failed_expectations,
        counts.max_null_rate,
        hours_between(counts.last_merged_at, now) if counts.last_merged_at is not None else None,
        report.k_anonymity,
    )
    breaches = find_breaches(metrics, thresholds)
    stored = [(b.metric, b.subject, b.value, b.threshold) for b in breaches]
    quality.replace_run_metrics(warehouse, run_id, _rows(metrics), stored, now)
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
