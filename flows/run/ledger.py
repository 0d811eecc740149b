"""The run ledger: every batch's state, counts and reason as types, and the run's verdict.

The batch loop drives it (planned -> landed -> merged, or not started, not landed, rejected, held back); the
end of the run, the monitoring and the manifest read it. Pure: no Prefect, no warehouse, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

from flows.landing.files import LandedBatch


class BatchState(StrEnum):
    """Where a batch of the run is."""

    PLANNED = "planned"
    NOT_STARTED = "not_started"  # a stop, the deadline, a full disk or an unreachable source came first
    NOT_LANDED = "not_landed"  # extracting, anonymising or landing it failed
    LANDED = "landed"  # its anonymised files are in the landing place
    MERGED = "merged"  # loaded, passed the gate, merged into staging: published
    REJECTED = "rejected"  # the validation gate refused it: it stays in landing, unpublished
    HELD_BACK = "held_back"  # loaded but not merged (an error): the next run publishes it


# The state machine: from a state, the states a batch may move to.
TRANSITIONS: dict[BatchState, frozenset[BatchState]] = {
    BatchState.PLANNED: frozenset({BatchState.NOT_STARTED, BatchState.NOT_LANDED, BatchState.LANDED}),
    BatchState.LANDED: frozenset({BatchState.MERGED, BatchState.REJECTED, BatchState.HELD_BACK}),
}
UNPUBLISHED = frozenset(
    {BatchState.NOT_STARTED, BatchState.NOT_LANDED, BatchState.REJECTED, BatchState.HELD_BACK}
)


class LedgerError(RuntimeError):
    """A batch was moved in a way the state machine does not allow (a bug, never bad data)."""


@dataclass(frozen=True)
class BatchEntry:
    """One batch of the run: its plan, its state and, once landed, what landing produced."""

    batch_id: str
    index: int
    requested: int
    state: BatchState = BatchState.PLANNED
    landed: LandedBatch | None = None
    cached: bool = False  # landed by an earlier run (Prefect's cache), not fetched again
    reason: str | None = None  # why it was not published, in one line

    @property
    def problem(self) -> str | None:
        """The batch's problem as the run's verdict names it, or None."""
        match self.state:
            case BatchState.NOT_STARTED:
                return f"batch {self.batch_id} not started: {self.reason}"
            case BatchState.NOT_LANDED:
                return f"batch {self.batch_id} not landed: {self.reason}"
            case BatchState.REJECTED:
                return f"batch {self.batch_id} rejected by the validation gate (failed: {self.reason})"
            case BatchState.HELD_BACK:
                return f"batch {self.batch_id} not merged: {self.reason}"
        return None

    def counts(self) -> dict[str, Any]:
        """The batch as the manifest lists it: what landing produced, merged or not, fetched or cached."""
        merged = self.state is BatchState.MERGED
        if self.landed is None:
            return {"batch_id": self.batch_id, "requested": self.requested, "merged": False, "rejected": True}
        return {**asdict(self.landed), "merged": merged, "rejected": not merged, "cached": self.cached}


@dataclass(frozen=True)
class Accounting:
    """Where the run's requested records went: requested = published + quarantined + duplicates + erased
    + rejected (received: records that came back; skipped pages were published by an earlier run)."""

    requested: int
    received: int
    published: int
    quarantined: int
    duplicates: int
    erased: int
    rejected: int
    skipped_already_published: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class RunLedger:
    """The batches of one run, in plan order, and why no further batch may start (if so)."""

    def __init__(self, batches: Iterable[tuple[str, int, int]] = ()) -> None:
        self._entries: dict[str, BatchEntry] = {}
        self._halted: str | None = None
        # What failed the run beside its batches (a generation not switched over).
        self._run_problems: list[str] = []
        self.models_built = False  # dbt built the models above staging in this run
        self.plan(batches)

    def plan(self, batches: Iterable[tuple[str, int, int]]) -> None:
        """Add batches as planned: (batch id, index in the run, persons requested)."""
        for batch_id, index, requested in batches:
            if batch_id in self._entries:
                raise LedgerError(f"batch {batch_id} is planned twice")
            self._entries[batch_id] = BatchEntry(batch_id, index, requested)

    # --- transitions, as the batch loop drives them ---
    def not_started(self, batch_id: str, reason: str) -> None:
        self._move(batch_id, BatchState.NOT_STARTED, reason=reason)

    def not_landed(self, batch_id: str, reason: str) -> None:
        self._move(batch_id, BatchState.NOT_LANDED, reason=reason)

    def landed(self, landed: LandedBatch, cached: bool) -> None:
        self._move(landed.batch_id, BatchState.LANDED, landed=landed, cached=cached)

    def merged(self, batch_id: str) -> None:
        self._move(batch_id, BatchState.MERGED)

    def rejected(self, batch_id: str, failed: Sequence[str]) -> None:
        self._move(batch_id, BatchState.REJECTED, reason=", ".join(failed))

    def held_back(self, batch_id: str, reason: str) -> None:
        self._move(batch_id, BatchState.HELD_BACK, reason=reason)

    def halt(self, reason: str) -> None:
        """No further batch may start (a full disk, an unreachable source): the first reason stays."""
        self._halted = self._halted or reason

    def fail(self, problem: str) -> None:
        """A problem of the run as a whole, named in its verdict after the batches'."""
        self._run_problems.append(problem)

    def _move(self, batch_id: str, state: BatchState, **changes: Any) -> None:
        entry = self._entries.get(batch_id)
        if entry is None:
            raise LedgerError(f"batch {batch_id} is not planned in this run")
        if state not in TRANSITIONS.get(entry.state, frozenset()):
            raise LedgerError(f"batch {batch_id} cannot go from {entry.state} to {state}")
        self._entries[batch_id] = replace(entry, state=state, **changes)

    # --- what the end of the run reads ---
    @property
    def halted(self) -> str | None:
        return self._halted

    @property
    def entries(self) -> list[BatchEntry]:
        return list(self._entries.values())

    def in_state(self, *states: BatchState) -> list[BatchEntry]:
        return [entry for entry in self._entries.values() if entry.state in states]

    def landed_batches(self) -> list[LandedBatch]:
        """What landing produced for each batch that reached the landing place (published or not)."""
        return [entry.landed for entry in self._entries.values() if entry.landed is not None]

    @property
    def problems(self) -> list[str]:
        """Every batch that was not published (in plan order), then the run's own problems; one line each."""
        batches = [problem for entry in self._entries.values() if (problem := entry.problem) is not None]
        return [*batches, *self._run_problems]

    @property
    def published(self) -> bool:
        """The verdict: every planned batch merged, nothing else failed (nothing to fetch: published)."""
        merged = all(entry.state is BatchState.MERGED for entry in self._entries.values())
        return merged and not self._run_problems

    @property
    def merged_persons(self) -> int:
        return sum(entry.landed.persons for entry in self.in_state(BatchState.MERGED) if entry.landed)

    def manifest_batches(self) -> list[dict[str, Any]]:
        """The batches as the manifest and the monitoring read them: each one that was started."""
        return [
            entry.counts() for entry in self._entries.values() if entry.state is not BatchState.NOT_STARTED
        ]

    def accounting(self, requested: int, skipped_persons: int) -> Accounting:
        """The run's records: where each requested one went."""
        started = [entry for entry in self._entries.values() if entry.state is not BatchState.NOT_STARTED]
        merged = [entry.landed for entry in self.in_state(BatchState.MERGED) if entry.landed is not None]
        return Accounting(
            requested=requested,
            received=sum(batch.extracted + batch.forgotten for batch in self.landed_batches()),
            published=sum(batch.persons for batch in merged),
            quarantined=sum(batch.quarantined for batch in merged),
            duplicates=sum(batch.duplicates for batch in merged),
            erased=sum(batch.forgotten for batch in merged),
            rejected=sum(entry.requested for entry in started if entry.state is not BatchState.MERGED),
            skipped_already_published=skipped_persons,
        )

    def failure(self, docs_index: str | None) -> str:
        """The failed run's message: how many batches were not published, which, why, where to look."""
        problems = self.problems
        docs = f"; data docs: {docs_index}" if docs_index else ""
        return f"{len(problems)} batch(es) were not published: {'; '.join(problems)}{docs}"
