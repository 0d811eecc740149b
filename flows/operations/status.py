"""`persons-pipeline status` and `history`: what the warehouse publishes now and how the last runs went.

Read from the warehouse alone (no Prefect API needed; DuckDB is opened read-only), counts and ids only. The
reading is thin (`read_status`, `read_history`); the renderings are pure functions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from flows.warehouse.base import Warehouse, utc_now


@dataclass(frozen=True)
class RunOutcome:
    """One run as the warehouse's audit trail tells it."""

    run_id: str
    started_at: str
    last_step_at: str
    batches: int
    merged_batches: int
    rejected_batches: int
    held_back_batches: int
    persons: int
    quarantined: int

    @property
    def verdict(self) -> str:
        """published (every batch merged), failed (a batch rejected) or incomplete (batches held back)."""
        if self.rejected_batches:
            return "failed"
        if self.merged_batches < self.batches:
            return "incomplete"
        return "published"


@dataclass(frozen=True)
class Status:
    """The published state and the latest runs."""

    warehouse: str
    generation_id: str | None
    key_fingerprint: str | None
    reference_date: str | None
    persons: int
    open_quarantine: int | None
    last_merged_at: str | None
    hours_since_last_merge: float | None
    freshness_hours: float
    runs: list[RunOutcome] = field(default_factory=list)

    @property
    def fresh(self) -> bool | None:
        """Whether a batch was merged within the freshness threshold (None: never)."""
        if self.hours_since_last_merge is None:
            return None
        return self.hours_since_last_merge <= self.freshness_hours

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `status --json`."""
        document = asdict(self)
        document["fresh"] = self.fresh
        document["runs"] = [{**asdict(run), "verdict": run.verdict} for run in self.runs]
        return document


def _text(value: Any) -> str | None:
    """A timestamp or date as ISO text (None stays None)."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return None if value is None else str(value)


def read_history(warehouse: Warehouse, runs: int) -> list[RunOutcome]:
    """The last `runs` runs, newest first."""
    with warehouse.cursor() as cursor:
        rows = cursor.execute(warehouse.sql("reporting/select_run_history"), runs=runs)
    return [
        RunOutcome(
            str(run_id), _text(started) or "", _text(last) or "", *(int(value or 0) for value in counts)
        )
        for run_id, started, last, *counts in rows
    ]


def _open_quarantine(warehouse: Warehouse) -> int | None:
    """The report's quarantined figure (None before the models were first built)."""
    try:
        with warehouse.cursor() as cursor:
            return int(cursor.execute(warehouse.sql("reporting/select_open_quarantine"))[0][0])
    except Exception:  # the reporting models do not exist yet
        return None


def read_status(warehouse: Warehouse, freshness_hours: float, runs: int = 5) -> Status:
    """The published state: generation, persons, freshness, open quarantine, and the latest runs."""
    with warehouse.cursor() as cursor:
        serving = cursor.execute(warehouse.sql("staging/select_serving_generation"))
        count = warehouse.sql("staging/count_persons").statements()[0].format(target="staging.persons")
        (persons,) = cursor.run(count)[0]
        (last_merged,) = cursor.execute(warehouse.sql("monitoring/select_last_merged_at"))[0]
    generation_id, fingerprint, reference_date = serving[0] if serving else (None, None, None)
    hours = None
    if isinstance(last_merged, datetime):
        hours = max(0.0, (utc_now() - last_merged.replace(tzinfo=None)).total_seconds() / 3600.0)
    return Status(
        warehouse=warehouse.location,
        generation_id=_text(generation_id),
        key_fingerprint=_text(fingerprint),
        reference_date=_text(reference_date),
        persons=int(persons),
        open_quarantine=_open_quarantine(warehouse),
        last_merged_at=_text(last_merged),
        hours_since_last_merge=None if hours is None else round(hours, 2),
        freshness_hours=freshness_hours,
        runs=read_history(warehouse, runs),
    )


def render_history(runs: list[RunOutcome]) -> str:
    """The runs as a table, newest first."""
    if not runs:
        return "no runs have loaded batches into this warehouse yet"
    columns = ("started (UTC)", "verdict", "batches merged", "persons", "quarantined")
    header = "{:<20} {:<10} {:>24} {:>12} {:>11}  run".format(*columns)
    lines = [header]
    for run in runs:
        rejected = f", {run.rejected_batches} rejected" if run.rejected_batches else ""
        batches = f"{run.merged_batches}/{run.batches}{rejected}"
        lines.append(
            f"{run.started_at[:19]:<20} {run.verdict:<10} {batches:>24} {run.persons:>12,} "
            f"{run.quarantined:>11,}  {run.run_id}"
        )
    return "\n".join(lines)


def render_status(status: Status) -> str:
    """The published state in words, then the latest runs."""
    if status.generation_id is None:
        published = "nothing is published yet"
    else:
        published = (
            f"{status.persons:,} persons published (generation {status.generation_id}, reference date "
            f"{status.reference_date}, key {status.key_fingerprint})"
        )
    if status.hours_since_last_merge is None:
        freshness = "no batch merged yet"
    else:
        verdict = "fresh" if status.fresh else f"STALE (more than {status.freshness_hours:g} h)"
        freshness = (
            f"last batch merged {status.hours_since_last_merge:.1f} h ago ({status.last_merged_at} UTC): "
            f"{verdict}"
        )
    quarantine = (
        "not known until the models are built"
        if status.open_quarantine is None
        else f"{status.open_quarantine:,} persons held back and not published"
    )
    return "\n".join(
        [
            f"warehouse:   {status.warehouse}",
            f"published:   {published}",
            f"freshness:   {freshness}",
            f"quarantine:  {quarantine}",
            "",
            "latest runs:",
            render_history(status.runs),
        ]
    )
