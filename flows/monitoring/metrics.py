"""Quality metrics of a batch and a run, and their breaches: pure functions over counts, never values.

A metric is a number about a subject: a layer, a quarantine reason, a column, the *name* of an unknown
source field, an expectation. Rates are shares in [0, 1] of the records they are about.

A batch's quarantine figures are the anonymiser's record counts (what it held back, record by record); a run's
are read from `transform.quarantined`, the one relation the report's `quarantined` and `quarantine_reasons`
come from too: the persons of the published state this run quarantined first, so the three always agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from flows.landing.files import LandedBatch

ALL = "all"  # the subject of a rate over every reason


@dataclass(frozen=True)
class Metric:
    """One measurement: `metric` of `subject` (batch_id None: of the run as a whole)."""

    metric: str
    subject: str
    value: float
    batch_id: str | None = None


@dataclass(frozen=True)
class Thresholds:
    """The limits a run's metrics are held to (PERSONS_MONITOR_* settings)."""

    max_quarantine_rate: float
    max_duplicate_rate: float
    max_schema_drift_fields: int
    freshness_hours: float

    def limits(self) -> dict[tuple[str, str], float]:
        """(metric, subject) -> the largest value that is not a breach."""
        return {
            ("quarantine_rate", ALL): self.max_quarantine_rate,
            ("duplicate_record_rate", "person_key"): self.max_duplicate_rate,
            ("schema_drift_fields", "source"): float(self.max_schema_drift_fields),
            ("hours_since_last_merge", "staging.persons"): self.freshness_hours,
        }


@dataclass(frozen=True)
class Breach:
    """A run-level metric beyond its threshold."""

    metric: str
    subject: str
    value: float
    threshold: float


def rate(part: float, whole: float) -> float:
    """part / whole, 0 for an empty whole."""
    return float(part) / float(whole) if whole else 0.0


def quarantine_metrics(
    reasons: Mapping[str, int], received: int, batch_id: str | None = None
) -> list[Metric]:
    """Records and rate per quarantine reason, and the rate over all reasons."""
    metrics = [Metric("received_records", "landing.persons", float(received), batch_id)]
    for reason, records in sorted(reasons.items()):
        metrics.append(Metric("quarantined_records", reason, float(records), batch_id))
        metrics.append(Metric("quarantine_rate", reason, rate(records, received), batch_id))
    metrics.append(Metric("quarantine_rate", ALL, rate(sum(reasons.values()), received), batch_id))
    return metrics


def cleaning_metrics(cleaned: Mapping[str, int], batch_id: str | None = None) -> list[Metric]:
    """Values per raw field whose control or format characters were removed or that NFC changed."""
    return [Metric("cleaned_values", name, float(n), batch_id) for name, n in sorted(cleaned.items())]


def drift_metrics(unknown_fields: Mapping[str, int], batch_id: str | None = None) -> list[Metric]:
    """Records carrying each unknown source field (by name), and how many such fields there were."""
    metrics = [
        Metric("unknown_field_records", name, float(records), batch_id)
        for name, records in sorted(unknown_fields.items())
    ]
    metrics.append(Metric("schema_drift_fields", "source", float(len(unknown_fields)), batch_id))
    return metrics


def column_metrics(batch: pa.Table, batch_id: str | None = None) -> list[Metric]:
    """Per column: the share of nulls and of duplicate values (rows repeating an earlier value, a null
    counting as a value: Snowflake's NULL_COUNT and DUPLICATE_COUNT, as rates)."""
    rows = batch.num_rows
    metrics = []
    for name in batch.column_names:
        column = batch.column(name)
        distinct = pc.count_distinct(column, mode="all").as_py() if rows else 0
        metrics.append(Metric("null_rate", name, rate(column.null_count, rows), batch_id))
        metrics.append(Metric("duplicate_value_rate", name, rate(rows - distinct, rows), batch_id))
    return metrics


def expectation_metrics(
    outcomes: Iterable[tuple[str, bool, int]], batch_id: str | None = None
) -> list[Metric]:
    """Each expectation's verdict (1 passed, 0 failed) and its count of unexpected rows."""
    metrics = []
    for name, success, unexpected in outcomes:
        metrics.append(Metric("expectation_success", name, 1.0 if success else 0.0, batch_id))
        metrics.append(Metric("expectation_unexpected", name, float(unexpected), batch_id))
    return metrics


def batch_metrics(
    landed: LandedBatch, batch: pa.Table, outcomes: Sequence[tuple[str, bool, int]]
) -> list[Metric]:
    """What the monitor records of one validated batch: rows, quarantine, drift, columns, verdicts."""
    batch_id = landed.batch_id
    return [
        Metric("layer_rows", "landing.persons", float(batch.num_rows), batch_id),
        Metric("layer_rows", "landing.quarantined_persons", float(landed.quarantined), batch_id),
        *quarantine_metrics(landed.reasons, landed.extracted, batch_id),
        Metric("duplicate_record_rate", "person_key", rate(landed.duplicates, landed.extracted), batch_id),
        *cleaning_metrics(landed.cleaned, batch_id),
        *drift_metrics(landed.unknown_fields, batch_id),
        *column_metrics(batch, batch_id),
        *expectation_metrics(outcomes, batch_id),
    ]


def hours_between(earlier: datetime, later: datetime) -> float:
    """Hours from `earlier` to `later` (never negative)."""
    return max(0.0, (later - earlier).total_seconds() / 3600.0)


def run_metrics(
    batches: Sequence[Mapping[str, Any]],
    quarantined: Mapping[str, int],
    layer_rows: Mapping[str, int],
    expectations_failed: int,
    max_null_rate: float | None,
    hours_since_last_merge: float | None,
    k_anonymity: Mapping[str, int | None],
) -> list[Metric]:
    """The run as a whole, from its batches (as the manifest lists them), the persons per reason it
    quarantined first (`transform.quarantined`, as the report counts them) and the warehouse's counts."""
    landed = [batch for batch in batches if "extracted" in batch]  # batches that reached landing
    received = sum(int(batch["extracted"]) for batch in landed)
    cleaned: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    for batch in landed:
        cleaned.update(batch.get("cleaned") or {})
        unknown.update(batch.get("unknown_fields") or {})
    duplicates = sum(int(batch.get("duplicates", 0)) for batch in landed)
    metrics = [
        Metric("batches_merged", "landing.batches", float(sum(1 for b in batches if b.get("merged")))),
        Metric("batches_rejected", "landing.batches", float(sum(1 for b in batches if not b.get("merged")))),
        *(Metric("layer_rows", layer, float(rows)) for layer, rows in layer_rows.items()),
        *quarantine_metrics(quarantined, received),
        Metric("duplicate_record_rate", "person_key", rate(duplicates, received)),
        *cleaning_metrics(cleaned),
        *drift_metrics(unknown),
        Metric("expectations_failed", "persons_batch", float(expectations_failed)),
    ]
    if max_null_rate is not None:
        metrics.append(Metric("max_null_rate", "landing.persons", max_null_rate))
    if hours_since_last_merge is not None:
        metrics.append(Metric("hours_since_last_merge", "staging.persons", hours_since_last_merge))
    metrics += [
        Metric("k_anonymity", name, float(value))
        for name, value in sorted(k_anonymity.items())
        if value is not None
    ]
    return metrics


def find_breaches(metrics: Iterable[Metric], thresholds: Thresholds) -> list[Breach]:
    """The run-level metrics above their threshold."""
    limits = thresholds.limits()
    return [
        Breach(metric.metric, metric.subject, metric.value, limits[(metric.metric, metric.subject)])
        for metric in metrics
        if metric.batch_id is None
        and (metric.metric, metric.subject) in limits
        and metric.value > limits[(metric.metric, metric.subject)]
    ]
