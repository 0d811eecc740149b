"""The monitoring repository: quality metrics and breaches in `monitoring.*`, and the warehouse's counts a
run's metrics are computed from (the metrics themselves are `flows.monitoring`'s)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flows.warehouse.base import Cursor, Warehouse

# The bind parameters of sql/monitoring/insert_metric.sql, in the order they appear there.
METRIC_COLUMNS = ("run_id", "batch_id", "metric", "subject", "metric_value", "measured_at")
# One metric as stored: (batch_id or None for the run, metric, subject, value).
MetricRow = tuple[str | None, str, str, float]
# One breach as stored: (metric, subject, value, threshold).
BreachRow = tuple[str, str, float, float]


@dataclass(frozen=True)
class RunCounts:
    """What the warehouse holds of a run: persons per first quarantine reason, rows per layer, failed
    expectations, the largest null rate, and the last merge of any run."""

    quarantined: dict[str, int]
    layer_rows: dict[str, int]
    failed_expectations: int
    max_null_rate: float | None
    last_merged_at: Any


def _insert_metrics(
    warehouse: Warehouse, cursor: Cursor, run_id: str, metrics: Sequence[MetricRow], at: datetime
) -> None:
    """All metrics with one statement, the rows bound in METRIC_COLUMNS' order."""
    sql, _ = warehouse.sql("monitoring/insert_metric").bind(**dict.fromkeys(METRIC_COLUMNS))
    cursor.run_many(
        sql, [(run_id, batch_id, metric, subject, value, at) for batch_id, metric, subject, value in metrics]
    )


def replace_batch_metrics(
    warehouse: Warehouse, run_id: str, batch_id: str, metrics: Sequence[MetricRow], at: datetime
) -> None:
    """A batch's metrics, replacing what an earlier attempt at the batch recorded."""
    with warehouse.cursor() as cursor, cursor.transaction():
        cursor.execute(warehouse.sql("monitoring/delete_batch_metrics"), run_id=run_id, batch_id=batch_id)
        _insert_metrics(warehouse, cursor, run_id, metrics, at)


def run_counts(warehouse: Warehouse, run_id: str) -> RunCounts:
    """The warehouse's counts of a run, in one connection; they scan the published layers, so with the
    engine's caps for such reads (as the report's)."""
    return warehouse.heavy_reads(lambda: _run_counts(warehouse, run_id))


def _run_counts(warehouse: Warehouse, run_id: str) -> RunCounts:
    with warehouse.cursor() as cursor:
        reasons = cursor.execute(warehouse.sql("monitoring/select_run_quarantine"), run_id=run_id)
        layers = cursor.execute(warehouse.sql("monitoring/select_layer_rows"), run_id=run_id)
        failed, max_null = cursor.execute(
            warehouse.sql("monitoring/select_run_batch_summary"), run_id=run_id
        )[0]
        (last_merged,) = cursor.execute(warehouse.sql("monitoring/select_last_merged_at"))[0]
    return RunCounts(
        quarantined={str(reason): int(records) for reason, records in reasons},
        layer_rows={str(layer): int(rows) for layer, rows in layers},
        failed_expectations=int(failed or 0),
        max_null_rate=None if max_null is None else float(max_null),
        last_merged_at=last_merged,
    )


def replace_run_metrics(
    warehouse: Warehouse,
    run_id: str,
    metrics: Sequence[MetricRow],
    breaches: Sequence[BreachRow],
    at: datetime,
) -> None:
    """The run's metrics and breaches, replacing an earlier record of the run, in one transaction."""
    with warehouse.cursor() as cursor, cursor.transaction():
        cursor.execute(warehouse.sql("monitoring/delete_run_metrics"), run_id=run_id)
        _insert_metrics(warehouse, cursor, run_id, metrics, at)
        for metric, subject, value, threshold in breaches:
            cursor.execute(
                warehouse.sql("monitoring/insert_breach"),
                run_id=run_id,
                metric=metric,
                subject=subject,
                metric_value=value,
                threshold=threshold,
                detected_at=at,
            )
