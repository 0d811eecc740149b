"""The pipeline's tasks: thin I/O steps, each retried where a retry can help.

Raw pages exist only inside `extract_pages` and `anonymise_pages`, in the raw-data worker process (NO_CACHE,
never persisted, scrubbed exceptions). The first thing that is cached, persisted or written is an anonymised
batch.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import date
from typing import Any
from uuid import uuid4

import orjson
from prefect import State, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.transactions import Transaction
from pydantic import SecretStr

from flows.anonymise.transform import POLICY_VERSION
from flows.gate.validation import BatchRejected, Gate, GateResult
from flows.landing.files import LandedBatch, LandingStore, parquet_to_table, write_batch_files
from flows.monitoring.monitor import record_batch_quality
from flows.plan import BatchPlan
from flows.rawdata.client import ClientConfig, PageQuery
from flows.rawdata.exclusions import Exclusions
from flows.rawdata.worker import AnonymiseSummary, ExtractSummary, IngestWorker, WorkerStopped
from flows.report.reads import read_report
from flows.report.render import Report
from flows.runtime.preflight import is_disk_full
from flows.runtime.stopping import stop_requested
from flows.warehouse import Warehouse, batch_store
from flows.warehouse.batch_store import MergeResult
from flows.warehouse.generations import Generation, PublishedBatch


def worth_retrying(task: Any, task_run: Any, state: State[Any]) -> bool:
    """Retry a failed I/O step, except once the run is stopping (a stop signal: nothing may start again) or
    the disk is full (a retry cannot help; the rerun will)."""
    if stop_requested():
        return False
    try:
        state.result()
    except Exception as exc:
        return not is_disk_full(exc)
    return True


# The retry policy of every task that does I/O a second attempt can fix (a lock, a network hiccup).
IO_RETRIES: dict[str, Any] = {"retries": 2, "retry_delay_seconds": 5, "retry_condition_fn": worth_retrying}


# No task retries: the client retries every page itself (attempts, backoff, Retry-After, the run deadline),
# and a retry of the whole task multiplied them (an unreachable source took 3 x 10 attempts to report).
@task(name="extract-pages", cache_policy=NO_CACHE, persist_result=False)
def extract_pages(
    worker: IngestWorker, handle: str, plan: BatchPlan, client_config: ClientConfig, query: PageQuery
) -> ExtractSummary:
    """Fetch a batch's pages (N in flight, rate-limited, retried) into the worker; counts come back."""
    return worker.extract(handle, plan, client_config, query)


@task(name="anonymise-batch", cache_policy=NO_CACHE, persist_result=False)
def anonymise_pages(
    worker: IngestWorker, handle: str, secret: SecretStr, reference_date: date, exclusions: Exclusions
) -> AnonymiseSummary:
    """Drop forgotten persons and apply the column policy in the worker; nothing personal remains."""
    return worker.anonymise(handle, secret.get_secret_value().encode(), reference_date, exclusions)


@task(
    name="land-batch",
    cache_policy=NO_CACHE,
    persist_result=False,
    **IO_RETRIES,
)
def land_batch(
    worker: IngestWorker, handle: str, store: LandingStore, plan: BatchPlan, run_id: str, run_date: date
) -> LandedBatch:
    """Write the anonymised batch and its quarantine list as Parquet files to the landing place."""
    files = worker.land(handle)
    return write_batch_files(
        store, files, batch_id=plan.batch_id, batch_index=plan.index, run_id=run_id, run_date=run_date
    )


def secret_fingerprint(secret: SecretStr) -> str:
    """A non-reversible tag of the key, so a new key never reuses batches keyed with the old one."""
    return hashlib.sha256(b"person_key-secret|" + secret.get_secret_value().encode()).hexdigest()[:16]


def ingest_identity(
    plan: BatchPlan,
    base_url: str,
    query: PageQuery,
    reference_date: date,
    key_fingerprint: str,
    store_identity: str,
    exclusions_digest: str,
) -> str:
    """Same pages, filters, key, policy, reference date and landing place -> same landed batch (pure)."""
    material = [
        POLICY_VERSION,
        base_url,
        query.locale,
        str(query.birthday_start),
        str(query.birthday_end),
        [[page.number, page.seed, page.quantity] for page in plan.pages],
        reference_date.isoformat(),
        key_fingerprint,
        store_identity,
        exclusions_digest,
    ]
    return hashlib.sha256(orjson.dumps(material)).hexdigest()


def ingest_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """The landed batch's cache key: its `ingest_identity`."""
    client_config: ClientConfig = parameters["client_config"]
    return "ingest-" + ingest_identity(
        parameters["plan"],
        client_config.base_url,
        parameters["query"],
        parameters["reference_date"],
        secret_fingerprint(parameters["secret"]),
        parameters["store"].identity,
        parameters["exclusions"].digest,
    )


@task(name="ingest-batch", cache_key_fn=ingest_cache_key, persist_result=True)
def ingest_batch(
    plan: BatchPlan,
    client_config: ClientConfig,
    query: PageQuery,
    secret: SecretStr,
    reference_date: date,
    store: LandingStore,
    run_id: str,
    run_date: date,
    worker: IngestWorker,
    exclusions: Exclusions,
    label: str = "",
) -> LandedBatch:
    """Extract, anonymise and land one batch; cached, so a rerun does not refetch what already landed.
    (`label`, e.g. 3-of-10, names its task runs; it is not part of the cache key.)"""
    extract = extract_pages.with_options(task_run_name=f"extract-pages-{label or plan.batch_id}")
    anonymise = anonymise_pages.with_options(task_run_name=f"anonymise-batch-{label or plan.batch_id}")
    land = land_batch.with_options(task_run_name=f"land-batch-{label or plan.batch_id}")
    for attempt in (1, 2):  # a raw-data worker that died mid-batch took the batch with it: start over once
        handle = f"{run_id}/{plan.batch_id}/{uuid4().hex}"
        try:
            extracted = extract(worker, handle, plan, client_config, query)
            anonymised = anonymise(worker, handle, secret, reference_date, exclusions)
            started = time.perf_counter()
            landed = land(worker, handle, store, plan, run_id, run_date)
            break
        except WorkerStopped:
            if attempt == 2 or stop_requested():
                raise
            get_run_logger().warning("event=worker_restarted batch_id=%s", plan.batch_id)
        finally:
            with suppress(WorkerStopped):
                worker.discard(handle)
    landed.timings = {
        "extract": round(extracted.seconds, 4),
        "anonymise": round(anonymised.seconds, 4),
        "land": round(time.perf_counter() - started, 4),
    }
    landed.requested = plan.persons
    landed.forgotten = anonymised.forgotten
    landed.key_fingerprint = secret_fingerprint(secret)
    if (
        extracted.records != plan.persons
        or landed.extracted + anonymised.forgotten != extracted.records
        or landed.persons != anonymised.persons
    ):
        raise RuntimeError(
            f"batch {plan.batch_id}: counts changed between the plan, extraction, anonymisation and landing"
        )
    return landed


@task(
    name="migrate-warehouse",
    task_run_name="migrate-warehouse",  # one of its kind per run: no random suffix
    cache_policy=NO_CACHE,
    persist_result=False,
    **IO_RETRIES,
)
def migrate_warehouse(warehouse: Warehouse) -> list[str]:
    """Apply pending schema migrations (the views above staging are built by dbt, flows.analytics)."""
    applied = warehouse.migrate()
    if applied:
        get_run_logger().info("applied migrations: %s", ", ".join(applied))
    return applied


@task(
    name="load-batch",
    cache_policy=NO_CACHE,
    persist_result=False,
    **IO_RETRIES,
)
def load_batch(
    warehouse: Warehouse, store: LandingStore, landed: LandedBatch, run_id: str, generation: Generation
) -> int:
    """Append the landed files to the warehouse's landing layer (replacing this run's earlier copy)."""
    persons_file = store.read_bytes(landed.persons_key)
    if hashlib.sha256(persons_file).hexdigest() != landed.persons_sha256:
        raise RuntimeError(f"batch {landed.batch_id}: landed file changed since it was written")
    persons = parquet_to_table(persons_file)
    quarantine = parquet_to_table(store.read_bytes(landed.quarantine_key))
    return batch_store.load_batch(warehouse, landed, persons, quarantine, run_id, generation.generation_id)


# Prefect deep-copies transaction values, and a connection cannot be copied: the transaction holds ids only,
# the rollback looks the run's warehouse up here.
_RUN_WAREHOUSES: dict[str, Warehouse] = {}


@contextmanager
def registered_warehouse(run_id: str, warehouse: Warehouse) -> Iterator[Warehouse]:
    """Make the run's warehouse reachable from transaction hooks by run id while the run lasts."""
    _RUN_WAREHOUSES[run_id] = warehouse
    try:
        yield warehouse
    finally:
        _RUN_WAREHOUSES.pop(run_id, None)


@load_batch.on_rollback
def _hold_back_batch(txn: Transaction) -> None:
    """Whatever failed after loading, the batch stays in landing, visibly marked as not merged."""
    run_id, batch_id = txn.get("run_id"), txn.get("batch_id")
    batch_store.hold_back_batch(_RUN_WAREHOUSES[run_id], run_id, batch_id)


@task(name="validate-batch", cache_policy=NO_CACHE, persist_result=False)
def validate_batch(warehouse: Warehouse, gate: Gate, landed: LandedBatch, run_id: str) -> GateResult:
    """Run the GX suite on the batch as the warehouse holds it; raise BatchRejected if it fails."""
    frame = batch_store.read_batch(warehouse, run_id, landed.batch_id)
    # Against the plan, not against what came back: requested minus forgotten, quarantined and duplicates.
    expected = landed.requested - landed.forgotten - landed.quarantined - landed.duplicates
    result = gate.validate(frame, landed.batch_id, expected)
    batch_store.record_validation(
        warehouse, run_id, landed.batch_id, result.success, result.failed, result.docs_page
    )
    record_batch_quality(warehouse, run_id, landed, frame, result)  # monitoring.metrics: counts and rates
    if not result.success:
        raise BatchRejected(landed.batch_id, result.failed, result.statistics, result.docs_page)
    return result


@task(
    name="merge-batch",
    cache_policy=NO_CACHE,
    persist_result=False,
    **IO_RETRIES,
)
def merge_batch(
    warehouse: Warehouse, landed: LandedBatch, run_id: str, generation: Generation, published: PublishedBatch
) -> MergeResult:
    """MERGE the validated batch into its generation on person_key (all or nothing)."""
    return batch_store.merge_batch(warehouse, run_id, landed, generation, published)


@task(
    name="build-report",
    task_run_name="build-report",  # one of its kind per run: no random suffix
    cache_policy=NO_CACHE,
    persist_result=False,
    **IO_RETRIES,
)
def build_report(warehouse: Warehouse) -> Report:
    """Answer the reporting questions from the reporting models; refuse a published class under k."""
    report = read_report(warehouse)
    smallest, k = report.k_anonymity.get("smallest_class"), report.k_anonymity.get("k")
    if smallest is not None and k is not None and smallest < k:
        # The views guarantee it and dbt's k_anonymous test proves it at build time; each run checks again.
        raise RuntimeError(f"analytics.fct_persons shows a class of {smallest} persons, fewer than k={k}")
    return report
