"""What the steps of one run share: parameters, destinations, workers, clocks, and the event log line."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.exceptions import TerminationSignal
from prefect.runtime import flow_run
from pydantic import SecretStr

from flows.gate.recorded import RecordedGate
from flows.gate.validation import Gate, open_gate, write_docs_home
from flows.landing.files import LandingStore
from flows.monitoring.monitor import RunSubject
from flows.parameters import RunParameters, resolve_parameters
from flows.rawdata.worker import IngestWorker
from flows.run.ledger import RunLedger
from flows.run.slots import warehouse_slot
from flows.run.tasks import registered_warehouse
from flows.runtime.preflight import is_disk_full, keep_files_private
from flows.runtime.stopping import ended_on_stop, stop_on_signals, stop_requested, stop_signal
from flows.settings import PipelineSettings, get_settings
from flows.targets import Targets, make_landing_store, make_warehouse, resolve_targets
from flows.warehouse import Warehouse, batch_store
from flows.warehouse.base import utc_now

T = TypeVar("T")


class PipelineFailed(RuntimeError):
    """The run finished but did not publish every batch; the message says which and why (no values)."""


def log_event(logger: Any, event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """One structured line per event: `event=<name> key=value ...` (counts, ids, durations; never values)."""
    parts = [f"event={event}"]
    for key, value in fields.items():
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        parts.append(f"{key}={json.dumps(text) if (' ' in text or not text) else text}")
    logger.log(level, " ".join(parts))


def raise_if_stopped() -> None:
    """Raise the stop again where the run checks for it. The exception a signal handler raises can be lost
    (Python drops one raised while, say, an object's __del__ runs), and a stopped run must not go on to
    build the models or report: it ends as a stop, Crashed in Prefect, whatever swallowed the first one."""
    stopped = stop_signal()
    if stopped is None:
        return
    if stopped == signal.SIGINT:
        raise KeyboardInterrupt
    raise TerminationSignal(signal=int(stopped))


@contextmanager
def stop_wins() -> Iterator[None]:
    """An error raised while the run is stopping is the stop: a stop kills the processes a step waits for
    (the raw-data worker, dbt), and the run must end as stopped, not as failed by that."""
    try:
        yield
    except Exception:
        raise_if_stopped()
        raise


@dataclass
class Lap:
    """One measured block: its seconds once it has ended."""

    seconds: float = 0.0


@dataclass
class StageClock:
    """Seconds spent per stage over a run (summed over batches)."""

    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    # Each merge's (rows in the target after it, seconds): what publishing a batch costs by warehouse size.
    merges: list[tuple[int, float]] = field(default_factory=list)

    @contextmanager
    def measure(self, stage: str) -> Iterator[Lap]:
        """Add the duration of the block to `stage` (and give it to the block's lap)."""
        started, lap = time.perf_counter(), Lap()
        try:
            yield lap
        finally:
            lap.seconds = time.perf_counter() - started
            self.seconds[stage] += lap.seconds

    def merged(self, rows_after: int, seconds: float) -> None:
        """Note one merge's cost beside the rows its target held after it."""
        self.merges.append((rows_after, round(seconds, 4)))

    def rounded(self) -> dict[str, float]:
        """Stage seconds rounded for reports."""
        return {stage: round(value, 4) for stage, value in self.seconds.items()}


@dataclass
class RunWorkers:
    """The processes a run starts: the raw-data worker and the validation gate (built in the background:
    importing GX takes seconds); each is closed once, keeping what it used."""

    worker: IngestWorker
    gate_ready: Future[Gate]
    resources: dict[str, dict[str, float]] = field(default_factory=dict)
    gate_closed: bool = False

    @property
    def gate(self) -> Gate:
        """The run's validation gate, once it is ready."""
        return self.gate_ready.result()

    def close_worker(self) -> None:
        """Stop the raw-data worker, keeping what it used (closed also when asking it failed)."""
        try:
            if "raw_data_worker" not in self.resources:
                self.resources["raw_data_worker"] = self.worker.resources()
        finally:
            self.worker.close()

    def close_gate(self, run_id: str, data_dir: Path, clock: StageClock) -> None:
        """Build the run's data docs and stop the gate (once; also when the run failed)."""
        if self.gate_closed:
            return
        self.gate_closed = True
        if stop_requested():  # a stop signal: end now; the rerun's docs cover the batches again
            if self.gate_ready.done() and self.gate_ready.exception() is None:
                self.gate.close()  # one still being made (importing GX) is not waited for
            return
        try:
            with clock.measure("docs"):
                self.gate.build_docs()
                write_docs_home(data_dir / "data_docs")
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            # The run's verdict names the batches; the docs cannot be written now.
            log_event(get_run_logger(), "docs_not_built", run_id=run_id, error=str(exc), level=logging.ERROR)
        usage = self.gate.resources()
        if usage:  # a gate in a process of its own
            self.resources["validation_gate"] = usage
        self.gate.close()


@dataclass(frozen=True)
class RunContext:
    """What every step of one run shares, fixed when the run starts; what changes as it runs is in its
    ledger (the batches, their outcomes), its clock (seconds per stage) and its workers (processes)."""

    run_id: str
    run_date: date
    params: RunParameters
    settings: PipelineSettings
    secret: SecretStr
    targets: Targets
    store: LandingStore
    warehouse: Warehouse
    workers: RunWorkers
    ledger: RunLedger = field(default_factory=RunLedger)
    clock: StageClock = field(default_factory=StageClock)
    started_at: datetime = field(default_factory=utc_now)
    started: float = field(default_factory=time.perf_counter)

    @property
    def worker(self) -> IngestWorker:
        return self.workers.worker

    @property
    def gate(self) -> Gate:
        """The run's validation gate (built in the background: importing GX takes seconds)."""
        return self.workers.gate

    @property
    def monitored(self) -> RunSubject:
        """The run as its quality metrics and events name it."""
        return RunSubject(self.run_id, self.targets.environment, self.warehouse)

    @property
    def deadline_at(self) -> float | None:
        """When the run must be done (epoch seconds), or None without a deadline."""
        limit = self.settings.runs.run_deadline_s
        return self.started_at.timestamp() + limit if limit else None

    def refusal(self) -> str | None:
        """Why no further batch should start (a stop signal, a halt in the ledger, the deadline), if so."""
        if (stopped := stop_signal()) is not None:
            return f"the run was stopped ({stopped.name})"
        if self.ledger.halted is not None:
            return self.ledger.halted
        if self.deadline_at is not None and time.time() >= self.deadline_at:
            return "the run deadline (PERSONS_RUN_DEADLINE_S) passed"
        return None

    @property
    def data_dir(self) -> Path:
        """The run's data folder, absolute."""
        return self.params.data_dir.resolve()

    def close_gate(self) -> None:
        """Build the run's data docs and stop the gate process (once; also when the run failed)."""
        self.workers.close_gate(self.run_id, self.data_dir, self.clock)

    def close_worker(self) -> None:
        """Stop the raw-data worker, keeping what it used."""
        self.workers.close_worker()


def run_tags(targets: Targets, data_dir: Path) -> list[str]:
    """What tells a run apart in the Prefect UI's Runs list: its environment, warehouse and data folder."""
    return [f"env:{targets.environment}", f"warehouse:{targets.warehouse}", f"data-dir:{data_dir}"]


def tag_run(run_id: str, targets: Targets, data_dir: Path) -> None:
    """Add the run's tags to its flow run (a run started from the CLI or by a deployment alike)."""
    current = flow_run.get_id()
    if current is None:
        return
    tags = sorted({*flow_run.get_tags(), *run_tags(targets, data_dir)})
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run_id=UUID(str(current)), tags=tags)
    except Exception as exc:  # tags help finding a run; their absence must not fail it
        log_event(get_run_logger(), "run_not_tagged", run_id=run_id, error=type(exc).__name__)


def in_background(function: Callable[..., T], *args: Any) -> Future[T]:
    """`function(*args)` in a daemon thread: nothing waits for it at exit, so a stop signal that arrives
    while it imports GX ends the run at once (an import the signal interrupted can leave its lock held)."""
    future: Future[T] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(function(*args))
        except BaseException as exc:  # handed to whoever waits for the result
            future.set_exception(exc)

    threading.Thread(target=run, name="gate-import", daemon=True).start()
    return future


def hold_back_abandoned_batches(run: RunContext) -> None:
    """Batches a dead run loaded but never merged are marked held back (this run republishes them).

    Only where this run is the warehouse's one writer (DuckDB): holding its only slot, no other run is alive.
    """
    _, limit = run.targets.warehouse_slot(run.settings, run.data_dir)
    if limit != 1:
        return
    held = batch_store.hold_back_abandoned_batches(run.warehouse, run.run_id)
    if held:
        log_event(
            get_run_logger(),
            "abandoned_batches_held_back",
            run_id=run.run_id,
            batches=held,
            level=logging.WARNING,
        )


def start_gate(
    params: RunParameters, settings: PipelineSettings, data_dir: Path, run_id: str
) -> Future[Gate]:
    """The run's gate, made in the background; a sharded run's is its shards' verdicts."""
    if params.shards > 1:
        recorded: Future[Gate] = Future()
        recorded.set_result(RecordedGate(data_dir / "data_docs", run_id))
        return recorded
    return in_background(open_gate, data_dir / "data_docs", run_id, settings.runs.gate_process == "separate")


@contextmanager
def open_run(parameters: dict[str, Any]) -> Iterator[RunContext]:
    """Resolve parameters and destinations, check them, start the workers, take the warehouse's slot."""
    keep_files_private()  # a deployment's run starts here, not in the CLI
    settings = get_settings()
    params = resolve_parameters(settings, **parameters)
    secret = settings.person_key_secret()
    settings.require_real_secret(secret)
    data_dir = params.data_dir.resolve()
    run_id = str(flow_run.get_id() or f"local-{datetime.now(UTC):%Y%m%dT%H%M%S}")
    targets = resolve_targets(settings, params)
    # Everything that can be wrong with the destinations fails here, before any data moves.
    store = make_landing_store(targets, settings)
    store.check_access()
    worker = IngestWorker()
    if params.shards == 1:  # a sharded run's shards fetch and gate: it needs neither worker nor GX
        worker.start()
    try:
        with (
            stop_on_signals(),  # SIGTERM/SIGINT: no retry, no new batch; the worker and dbt end at once
            ended_on_stop(worker.abort),
            warehouse_slot(targets, settings, data_dir, run_id),
            make_warehouse(
                targets, data_dir, settings, params.pages_per_batch * params.page_size
            ) as warehouse,
            registered_warehouse(run_id, warehouse),
        ):
            run = RunContext(
                run_id=run_id,
                run_date=datetime.now(UTC).date(),
                params=params,
                settings=settings,
                secret=secret,
                targets=targets,
                store=store,
                warehouse=warehouse,
                workers=RunWorkers(worker, start_gate(params, settings, data_dir, run_id)),
            )
            tag_run(run_id, targets, data_dir)
            get_run_logger().info(
                "run %s: environment %s, warehouse %s (%s), landing %s",
                run_id,
                targets.environment,
                targets.warehouse,
                warehouse.location,
                store.identity,
            )
            try:
                yield run
            finally:
                run.close_worker()
                run.close_gate()
    finally:
        worker.close()
