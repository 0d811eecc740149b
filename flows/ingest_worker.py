"""The raw-data worker: a separate process that fetches, parses and anonymises pages, and lands the result.

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
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from multiprocessing.managers import BaseManager
from typing import IO, Any, ParamSpec, TypeVar, cast

import pyarrow as pa

from flows.anonymise import AnonymisedBatch, anonymise_batch
from flows.faker_client import ClientConfig, FakerApiClient, FakerApiError, FetchStats, PageQuery
from flows.landing import BatchFiles, serialise_batch
from flows.plan import BatchPlan
from flows.records import RAW_SCHEMA, parse_page

P = ParamSpec("P")
R = TypeVar("R")


class RawDataStepError(RuntimeError):
    """A step holding raw personal data failed; only the step and the error type are told."""


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
    seconds: float = 0.0


class RawDataWorker:
    """Lives in the worker process: batches between steps, by handle; steps of different batches run at
    the same time (one thread per caller), so one batch is anonymised while the next one downloads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._raw: dict[str, tuple[pa.Table, ExtractSummary]] = {}
        self._anonymised: dict[str, tuple[AnonymisedBatch, ExtractSummary]] = {}

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
            for _, (record_batch, page_unknown) in client.iter_pages(plan.pages, query, parse_page):
                record_batches.append(record_batch)
                unknown.update(page_unknown)
        raw = pa.Table.from_batches(record_batches, schema=RAW_SCHEMA)
        seconds = time.perf_counter() - started
        summary = ExtractSummary(raw.num_rows, dict(sorted(unknown.items())), stats.as_dict(), seconds)
        with self._lock:
            self._raw[handle] = (raw, summary)
        return summary

    @scrubbed("anonymise")
    def anonymise(self, handle: str, secret: bytes, reference_date: date) -> AnonymiseSummary:
        """Apply the column policy to the extracted batch; the raw table is dropped here."""
        started = time.perf_counter()
        with self._lock:
            raw, extracted = self._raw.pop(handle)
        anonymised = anonymise_batch(raw, secret, reference_date)
        del raw
        with self._lock:
            self._anonymised[handle] = (anonymised, extracted)
        return AnonymiseSummary(
            persons=anonymised.persons.num_rows,
            quarantined=anonymised.quarantine.num_rows,
            duplicates=anonymised.duplicates,
            reasons=dict(sorted(anonymised.reasons.items())),
            redactions=dict(sorted(anonymised.redactions.items())),
            seconds=time.perf_counter() - started,
        )

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

    def held(self) -> int:
        """How many batches the worker holds (0 between runs: nothing lingers)."""
        with self._lock:
            return len(self._raw) + len(self._anonymised)


class _WorkerManager(BaseManager):
    """Serves one RawDataWorker in its own process; every calling thread gets its own connection."""


_WorkerManager.register("RawDataWorker", RawDataWorker)


def serve(address: str) -> None:
    """Entry point of the worker process: serve RawDataWorker on a private Unix socket until the parent
    goes away (its end of stdin closes). The authentication key arrives on stdin, never on argv."""
    authkey = bytes.fromhex(sys.stdin.readline().strip())
    server = _WorkerManager(address=address, authkey=authkey).get_server()

    def exit_with_parent() -> None:
        sys.stdin.read()  # returns at EOF: the orchestrator stopped us or died
        os._exit(0)

    threading.Thread(target=exit_with_parent, name="parent-watch", daemon=True).start()
    print("ready", flush=True)
    server.serve_forever()


# Many short-lived parse buffers in several threads: few arenas and the system allocator hand memory back,
# where per-thread arenas and pools would keep each thread's high-water mark (set before the process starts).
_WORKER_ALLOCATOR = {"MALLOC_ARENA_MAX": "2", "ARROW_DEFAULT_MEMORY_POOL": "system"}

# Imported, not run as __main__, so pickled results name their classes by module (flows.ingest_worker.X).
_WORKER_ENTRY = "import sys; from flows.ingest_worker import serve; serve(sys.argv[1])"


class IngestWorker:
    """The orchestrator's handle on the worker process: a fresh interpreter that loads neither Prefect nor
    the orchestrator's main module, reached over a private Unix socket."""

    def __init__(self, start_timeout_s: float = 120.0) -> None:
        self._lock = threading.Lock()
        self._start_timeout_s = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._folder: str | None = None
        self._worker: Any = None

    def start(self) -> None:
        """Start the process (idempotent)."""
        with self._lock:
            if self._process is not None:
                return
            folder = tempfile.mkdtemp(prefix="persons-ingest-")  # 0700: only this user reaches the socket
            address = os.path.join(folder, "worker.sock")
            authkey = secrets.token_bytes(32)
            process = subprocess.Popen(  # noqa: S603 - our own module, run by our own interpreter
                [sys.executable, "-c", _WORKER_ENTRY, address],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env={**os.environ, **_WORKER_ALLOCATOR},
            )
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(authkey.hex().encode() + b"\n")
            process.stdin.flush()
            if not _wait_for_line(process.stdout, b"ready", self._start_timeout_s):
                process.kill()
                shutil.rmtree(folder, ignore_errors=True)
                raise RawDataStepError("the ingest worker did not start")
            manager = _WorkerManager(address=address, authkey=authkey)
            manager.connect()
            self._process, self._folder = process, folder
            self._worker = manager.RawDataWorker()  # type: ignore[attr-defined]

    def extract(
        self, handle: str, plan: BatchPlan, client_config: ClientConfig, query: PageQuery
    ) -> ExtractSummary:
        """RawDataWorker.extract, in the worker."""
        return cast(ExtractSummary, self._call("extract", handle, plan, client_config, query))

    def anonymise(self, handle: str, secret: bytes, reference_date: date) -> AnonymiseSummary:
        """RawDataWorker.anonymise, in the worker."""
        return cast(AnonymiseSummary, self._call("anonymise", handle, secret, reference_date))

    def land(self, handle: str) -> BatchFiles:
        """RawDataWorker.land, in the worker."""
        return cast(BatchFiles, self._call("land", handle))

    def discard(self, handle: str) -> None:
        """RawDataWorker.discard, in the worker."""
        self._call("discard", handle)

    def _call(self, method: str, *args: Any) -> Any:
        """Run a step in the worker; a dead worker is reported as such and replaced for the next call."""
        self.start()
        try:
            return getattr(self._worker, method)(*args)
        except (EOFError, ConnectionError, BrokenPipeError):
            self.close()
            raise RawDataStepError(f"the ingest worker stopped during {method}") from None

    def close(self) -> None:
        """Stop the process and remove its socket."""
        with self._lock:
            process, folder, self._process, self._folder, self._worker = (
                self._process,
                self._folder,
                None,
                None,
                None,
            )
        if process is not None:
            assert process.stdin is not None
            process.stdin.close()  # the worker exits when its stdin closes
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _wait_for_line(stream: IO[bytes], expected: bytes, timeout_s: float) -> bool:
    """Whether `expected` arrives as the next line within the timeout."""
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    return bool(result) and result[0].strip() == expected
