"""The raw-data worker: a separate process that fetches, parses and anonymises pages, and serialises them.

Why a process of its own:
- privacy: raw personal data never enters the orchestrating process, which talks to Prefect's API (states,
  logs, results); only counts and anonymised files come back from here;
- speed: parsing and anonymising run on another core than validation and loading (one GIL each);
- memory: the parser's allocations stay in a small process without Prefect and GX loaded.

The orchestrator drives it step by step (extract -> anonymise -> land) so that each step is its own Prefect
task; the worker keeps the batch between steps under a handle and drops it after landing or on `discard`.
Every error leaving the worker is scrubbed to its type (a library's message might quote a raw value).
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ParamSpec, TypeVar, cast

import pyarrow as pa

from flows import release_free_memory
from flows.anonymise.transform import AnonymisedBatch, anonymise_batch
from flows.landing.files import BatchFiles, serialise_batch
from flows.plan import BatchPlan
from flows.rawdata.client import ClientConfig, FakerApiClient, FakerApiError, FetchStats, PageQuery
from flows.rawdata.completeness import complete_pages
from flows.rawdata.exclusions import Exclusions, drop_forgotten
from flows.rawdata.records import RAW_SCHEMA, parse_page
from flows.runtime.environment import PROXY_VARIABLES
from flows.runtime.remote import RemoteObject, RemoteProcessError, own_resources

P = ParamSpec("P")
R = TypeVar("R")


class RawDataStepError(RuntimeError):
    """A step holding raw personal data failed; only the step and the error type are told."""


class WorkerStopped(RawDataStepError):
    """The raw-data worker process went away (it is started again on the next call)."""


def scrubbed(step: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Re-raise any error of a raw-data step without its message, which might quote a raw value."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return function(*args, **kwargs)
            except (FakerApiError, RawDataStepError):
                raise  # our own messages: page number, seed and status only
            except Exception as exc:
                raise RawDataStepError(f"{step} failed with {type(exc).__name__}") from None

        return wrapper

    return decorate


@dataclass(frozen=True)
class ExtractSummary:
    """What extracting one batch observed (no values)."""

    records: int
    unknown_fields: dict[str, int]
    fetch: dict[str, int]
    seconds: float


@dataclass(frozen=True)
class AnonymiseSummary:
    """What anonymising one batch produced (counts only)."""

    persons: int
    quarantined: int
    duplicates: int
    reasons: dict[str, int] = field(default_factory=dict)
    redactions: dict[str, int] = field(default_factory=dict)
    cleaned: dict[str, int] = field(default_factory=dict)  # values whose invisible characters or NFC changed
    seconds: float = 0.0
    forgotten: int = 0


class RawDataWorker:
    """Lives in the worker process: batches between steps, by handle; steps of different batches run at
    the same time (one thread per caller), so one batch is anonymised while the next one downloads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._raw: dict[str, tuple[pa.Table, ExtractSummary]] = {}
        self._anonymised: dict[str, tuple[AnonymisedBatch, ExtractSummary]] = {}
        self._translated_tombstones: set[str] = set()

    @scrubbed("extract")
    def extract(
        self, handle: str, plan: BatchPlan, client_config: ClientConfig, query: PageQuery
    ) -> ExtractSummary:
        """Fetch and parse a batch's pages into one raw Arrow table, kept here under `handle`."""
        started = time.perf_counter()
        stats = FetchStats()
        unknown: Counter[str] = Counter()
        record_batches = []
        with FakerApiClient(client_config, stats) as client:
            for _, (record_batch, page_unknown) in client.iter_pages(
                plan.pages, query, complete_pages(parse_page)
            ):
                record_batches.append(record_batch)
                unknown.update(page_unknown)
        raw = pa.Table.from_batches(record_batches, schema=RAW_SCHEMA)
        seconds = time.perf_counter() - started
        summary = ExtractSummary(raw.num_rows, dict(sorted(unknown.items())), stats.as_dict(), seconds)
        with self._lock:
            self._raw[handle] = (raw, summary)
        return summary

    @scrubbed("anonymise")
    def anonymise(
        self, handle: str, secret: bytes, reference_date: date, exclusions: Exclusions | None = None
    ) -> AnonymiseSummary:
        """Drop forgotten persons, apply the column policy to the batch; the raw table is dropped."""
        started = time.perf_counter()
        with self._lock:
            raw, extracted = self._raw.pop(handle)
        raw, forgotten, translated = drop_forgotten(raw, secret, exclusions or Exclusions())
        if translated:
            with self._lock:
                self._translated_tombstones.update(translated)
        anonymised = anonymise_batch(raw, secret, reference_date)
        del raw
        with self._lock:
            self._anonymised[handle] = (anonymised, extracted)
        release_free_memory()  # the raw batch and the intermediates of anonymisation
        return AnonymiseSummary(
            persons=anonymised.persons.num_rows,
            quarantined=anonymised.quarantine.num_rows,
            duplicates=anonymised.duplicates,
            reasons=dict(sorted(anonymised.reasons.items())),
            redactions=dict(sorted(anonymised.redactions.items())),
            cleaned=dict(sorted(anonymised.cleaned.items())),
            seconds=time.perf_counter() - started,
            forgotten=forgotten,
        )

    def take_translated_tombstones(self) -> list[str]:
        """Current keys of forgotten persons found by their previous key (re-keying), handed over once."""
        with self._lock:
            keys, self._translated_tombstones = sorted(self._translated_tombstones), set()
        return keys

    @scrubbed("land")
    def land(self, handle: str) -> BatchFiles:
        """Serialise the anonymised batch for landing (kept until `discard`, so a failed write can retry)."""
        with self._lock:
            anonymised, extracted = self._anonymised[handle]
        return serialise_batch(anonymised, extracted.unknown_fields, extracted.fetch)

    def discard(self, handle: str) -> None:
        """Forget whatever is held under `handle` (after a failed step)."""
        with self._lock:
            self._raw.pop(handle, None)
            self._anonymised.pop(handle, None)
        release_free_memory()

    def resources(self) -> dict[str, float]:
        """CPU seconds and peak RSS of the worker process so far."""
        return own_resources()


# Many short-lived parse buffers in several threads: few arenas and the system allocator hand memory back,
# where per-thread arenas and pools would keep each thread's high-water mark (set before the process starts).
_WORKER_ALLOCATOR = {"MALLOC_ARENA_MAX": "2", "ARROW_DEFAULT_MEMORY_POOL": "system"}


class IngestWorker:
    """The orchestrator's handle on the raw-data worker process (see flows.runtime.remote)."""

    def __init__(self) -> None:
        # Its HTTP client honours the proxy variables; the key reaches it over the socket, never by the env.
        self._remote = RemoteObject(
            "flows.rawdata.worker:RawDataWorker", env=_WORKER_ALLOCATOR, keep_env=PROXY_VARIABLES
        )
        self._worker: Any = None
        self._lock = threading.Lock()
        self._closed = False  # closed or aborted: never started again (a stop must not restart it)

    def start(self) -> None:
        """Start the process and create the worker in it (idempotent); WorkerStopped once it was closed."""
        with self._lock:
            if self._closed:
                raise WorkerStopped("the raw-data worker was stopped")
            if self._worker is None:
                self._worker = self._remote.create()

    def extract(
        self, handle: str, plan: BatchPlan, client_config: ClientConfig, query: PageQuery
    ) -> ExtractSummary:
        """RawDataWorker.extract, in the worker."""
        return cast(ExtractSummary, self._call("extract", handle, plan, client_config, query))

    def anonymise(
        self, handle: str, secret: bytes, reference_date: date, exclusions: Exclusions | None = None
    ) -> AnonymiseSummary:
        """RawDataWorker.anonymise, in the worker."""
        return cast(AnonymiseSummary, self._call("anonymise", handle, secret, reference_date, exclusions))

    def take_translated_tombstones(self) -> list[str]:
        """RawDataWorker.take_translated_tombstones, in the worker."""
        return cast(list[str], self._call("take_translated_tombstones"))

    def land(self, handle: str) -> BatchFiles:
        """RawDataWorker.land, in the worker."""
        return cast(BatchFiles, self._call("land", handle))

    def discard(self, handle: str) -> None:
        """RawDataWorker.discard, in the worker."""
        self._call("discard", handle)

    def resources(self) -> dict[str, float]:
        """The worker process's CPU seconds and peak RSS (empty if it is not running)."""
        if self._worker is None or self._closed:
            return {}
        return cast(dict[str, float], self._call("resources"))

    def _call(self, method: str, *args: Any) -> Any:
        self.start()
        try:
            return self._remote.call(self._worker, method, *args)
        except RemoteProcessError:
            with self._lock:
                self._worker = None
            raise WorkerStopped(f"the ingest worker stopped during {method}") from None

    @property
    def pid(self) -> int | None:
        """The worker process's id while it runs."""
        return self._remote.pid

    def abort(self) -> None:
        """End the process at once and for good (a stop signal): a call in flight fails with WorkerStopped."""
        self._closed = True
        self._remote.kill()

    def close(self) -> None:
        """Stop the process (for good)."""
        with self._lock:
            self._worker = None
            self._closed = True
        self._remote.close()
