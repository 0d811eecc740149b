"""The `persons-shard` flow: one shard of a sharded run, on any worker of the pool.

It extracts, anonymises and lands its batches (the cached `ingest-batch` task, in the raw-data worker), gates
each with the GX suite, and writes each batch's verdict to the landing store (`flows.run.sharding`). It never
opens the warehouse and never takes its slot: the run that planned it publishes what it lands. A batch whose
verdict is already there (landed by an earlier flow run of the same pages) is not fetched again. While it
runs it writes a heartbeat beside the verdicts, so the publisher can tell a dead shard from a slow one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from flows.gate.docs_home import write_docs_home
from flows.gate.offline_docs import upload_site
from flows.gate.validation import Gate, open_gate
from flows.landing.files import LandedBatch, LandingStore, parquet_to_table
from flows.parameters import ParameterError, resolve_parameters
from flows.rawdata.exclusions import Exclusions
from flows.rawdata.worker import IngestWorker
from flows.run.context import in_background, log_event
from flows.run.ingest import client_config
from flows.run.sharding import (
    SILENT_BEATS,
    ShardBatch,
    ShardSpec,
    exclusions_key,
    heartbeat_key,
    verdict_bytes,
    verdict_key,
)
from flows.run.tasks import ingest_batch, ingest_identity, secret_fingerprint
from flows.runtime.preflight import keep_files_private
from flows.runtime.stopping import ended_on_stop, stop_on_signals, stop_requested
from flows.settings import PipelineSettings, get_settings
from flows.targets import make_landing_store, resolve_targets, result_storage

SHARD_FLOW = "persons-shard"


class ShardRefused(ParameterError):
    """The shard cannot run here (another key than the run's); nothing was fetched."""


@contextmanager
def heartbeat(store: LandingStore, key: str, every_s: float, flow_run_id: str) -> Iterator[None]:
    """Write `{flow_run_id, at}` to the shard's heartbeat key every `every_s` seconds while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                store.write_bytes(
                    heartbeat_key(key), orjson.dumps({"flow_run_id": flow_run_id, "at": time.time()})
                )
            except Exception as exc:  # a missed beat is retried at the next one
                get_run_logger().warning("event=shard_heartbeat_failed error=%s", type(exc).__name__)
            if stop.wait(every_s):
                return

    thread = threading.Thread(target=beat, name="shard-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every_s + 5)


def read_exclusions(store: LandingStore, digest: str) -> Exclusions:
    """The tombstoned keys the run's shards drop, as the run wrote them beside the verdicts."""
    if digest == Exclusions().digest:
        return Exclusions()
    keys = orjson.loads(store.read_bytes(exclusions_key(digest)))
    exclusions = Exclusions(frozenset(keys))
    if exclusions.digest != digest:
        raise RuntimeError(f"the shard's exclusions {digest} changed since the run wrote them")
    return exclusions


class ShardWork:
    """One shard's batches: ingested a few ahead, each gated and handed over as a verdict, in order."""

    def __init__(self, spec: ShardSpec, settings: PipelineSettings, store: LandingStore, run_id: str) -> None:
        self.spec, self.settings, self.store, self.run_id = spec, settings, store, run_id
        self.secret = settings.person_key_secret()
        self.exclusions = read_exclusions(store, spec.exclusions_digest)
        self.client = client_config(settings, spec.api_url, None)
        self.run_date = datetime.now(UTC).date()
        self.counts = {"landed": 0, "found": 0, "rejected": 0}
        self.failures: list[str] = []

    def identity(self, batch: ShardBatch) -> str:
        return ingest_identity(
            batch.plan,
            self.spec.api_url,
            batch.query,
            self.spec.reference_date,
            self.spec.key_fingerprint,
            self.store.identity,
            self.spec.exclusions_digest,
        )

    def run(self, worker: IngestWorker, gate: Future[Gate], task: Any) -> None:
        """Every batch without a verdict yet: ingest (ahead), gate, write its verdict."""
        todo = deque(batch for batch in self.spec.batches if not self.found(batch))
        pending: deque[tuple[ShardBatch, PrefectFuture[LandedBatch]]] = deque()
        while todo or pending:
            while todo and len(pending) < self.settings.runs.batches_in_flight and not stop_requested():
                batch = todo.popleft()
                label = f"{self.spec.label}-{batch.batch_id}"
                runner = task.with_options(task_run_name=f"ingest-batch-{label}")
                arguments = (self.spec.reference_date, self.store, self.run_id, self.run_date, worker)
                future = runner.submit(
                    batch.plan, self.client, batch.query, self.secret, *arguments, self.exclusions, label
                )
                pending.append((batch, future))
            if not pending:
                break
            batch, future = pending.popleft()
            try:
                landed = future.result()
                self.hand_over(batch, landed, gate.result())
            except Exception as exc:
                self.failures.append(f"batch {batch.batch_id}: {type(exc).__name__}: {str(exc)[:300]}")
                log_event(
                    get_run_logger(), "shard_batch_failed", shard=self.spec.label, batch_id=batch.batch_id,
                    error=type(exc).__name__, level=logging.ERROR,
                )  # fmt: skip

    def found(self, batch: ShardBatch) -> bool:
        """Whether the batch's verdict is already in the landing store (then it is not fetched again)."""
        if self.store.exists(verdict_key(self.identity(batch))):
            self.counts["found"] += 1
            return True
        return False

    def hand_over(self, batch: ShardBatch, landed: LandedBatch, gate: Gate) -> None:
        """Gate the landed batch (the suite, as the unsharded run gates it) and write its verdict."""
        frame = parquet_to_table(self.store.read_bytes(landed.persons_key))
        expected = landed.requested - landed.forgotten - landed.quarantined - landed.duplicates
        result = gate.validate(frame, batch.batch_id, expected)
        self.store.write_bytes(
            verdict_key(self.identity(batch)),
            verdict_bytes(landed, result, batch, self.spec.label, self.run_id),
        )
        self.counts["landed"] += 1
        self.counts["rejected"] += 0 if result.success else 1
        log_event(
            get_run_logger(), "shard_batch_landed", shard=self.spec.label, batch_id=batch.batch_id,
            persons=landed.persons, quarantined=landed.quarantined, passed=result.success,
        )  # fmt: skip


def publish_docs(gate: Gate, store: LandingStore, data_dir: Any) -> None:
    """The shard's data docs, beside every run's (uploaded where the landing place is remote)."""
    gate.build_docs()
    write_docs_home(data_dir / "data_docs")
    if gate.index_path.exists():
        upload_site(store, gate.docs_dir)


@flow(name=SHARD_FLOW, persist_result=False, task_runner=ThreadPoolTaskRunner(max_workers=4))  # type: ignore[arg-type]
def persons_shard(shard: ShardSpec) -> dict[str, Any]:
    """Extract, anonymise, gate and land one shard's batches; the run that planned it publishes them."""
    keep_files_private()
    settings = get_settings()
    secret = settings.person_key_secret()
    settings.require_real_secret(secret)
    if secret_fingerprint(secret) != shard.key_fingerprint:
        raise ShardRefused(
            f"shard {shard.label} of run {shard.run_id}: this worker's key {secret_fingerprint(secret)} is "
            f"not the run's {shard.key_fingerprint} (fingerprints); give the pool's workers the run's key"
        )
    params = resolve_parameters(
        settings,
        api_url=shard.api_url,
        data_dir=shard.data_dir,
        warehouse=shard.warehouse,
        landing_url=shard.landing_url,
    )
    targets = resolve_targets(settings, params)
    store = make_landing_store(targets, settings)
    data_dir = params.data_dir.resolve()
    run_id = str(flow_run.get_id() or f"local-shard-{shard.key}")
    # Alive from here on (making the gate imports GX for seconds; the publisher must not take that as death).
    with heartbeat(store, shard.key, settings.runs.shard_heartbeat_s, run_id):
        work = ShardWork(shard, settings, store, run_id)
        task = ingest_batch.with_options(result_storage=result_storage(targets, store, data_dir))
        worker = IngestWorker()
        gate = in_background(open_gate, data_dir / "data_docs", run_id)  # GX imports while pages download
        try:
            with stop_on_signals(), ended_on_stop(worker.abort):
                work.run(worker, gate, task)
                if work.counts["landed"]:
                    publish_docs(gate.result(), store, data_dir)
        finally:
            worker.close()
            if gate.done() and gate.exception() is None:
                gate.result().close()
    log_event(get_run_logger(), "shard_finished", shard=shard.label, **work.counts, failed=len(work.failures))
    if work.failures:
        raise RuntimeError(
            f"shard {shard.label}: {len(work.failures)} batch(es) did not land: " + "; ".join(work.failures)
        )
    return {"shard": shard.label, **work.counts}


__all__ = ["SHARD_FLOW", "SILENT_BEATS", "ShardRefused", "persons_shard"]
