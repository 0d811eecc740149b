"""The Prefect flow: extract -> anonymise -> land -> load -> validate -> merge -> report, batch by batch.

Raw pages exist only inside `extract_pages` and `anonymise_batch` (NO_CACHE, never persisted, scrubbed
exceptions). The first thing that is cached, persisted or written is an anonymised batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast
from uuid import UUID, uuid4

import orjson
from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.context import TaskRunContext
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.transactions import Transaction, transaction
from pydantic import SecretStr

from flows.alerts import notify_failure
from flows.anonymise import POLICY_VERSION
from flows.faker_client import ClientConfig, PageQuery
from flows.ingest_worker import AnonymiseSummary, ExtractSummary, IngestWorker
from flows.landing import (
    LandedBatch,
    LandingStore,
    parquet_to_table,
    write_batch_files,
    write_manifest,
)
from flows.plan import BatchPlan, RunParameters, plan_batches, resolve_parameters
from flows.remote import own_resources
from flows.report import Report, render_json, render_summary, summary_rows, write_report_files
from flows.settings import PipelineSettings, get_settings
from flows.targets import Targets, make_landing_store, make_warehouse, resolve_targets
from flows.validation import BatchRejected, GateResult, RemoteValidationGate, write_docs_home
from flows.warehouse import MergeResult, Warehouse
from flows.warehouse.base import utc_now

FLOW_NAME = "persons-pipeline"
P = ParamSpec("P")
R = TypeVar("R")


class PipelineFailed(RuntimeError):
    """The run finished but did not publish every batch; the message says which and why (no values)."""


@task(
    name="extract-pages", cache_policy=NO_CACHE, persist_result=False, retries=2, retry_delay_seconds=[2, 10]
)
def extract_pages(
    worker: IngestWorker, handle: str, plan: BatchPlan, client_config: ClientConfig, query: PageQuery
) -> ExtractSummary:
    """Fetch a batch's pages (N in flight, rate-limited, retried) into the worker; counts come back."""
    return worker.extract(handle, plan, client_config, query)


@task(name="anonymise-batch", cache_policy=NO_CACHE, persist_result=False)
def anonymise_pages(
    worker: IngestWorker, handle: str, secret: SecretStr, reference_date: date
) -> AnonymiseSummary:
    """Apply the column policy in the worker; from here on nothing personal remains."""
    return worker.anonymise(handle, secret.get_secret_value().encode(), reference_date)


@task(name="land-batch", cache_policy=NO_CACHE, persist_result=False, retries=2, retry_delay_seconds=5)
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


def ingest_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Same pages, filters, key, policy, reference date and landing place -> same landed batch."""
    plan: BatchPlan = parameters["plan"]
    client_config: ClientConfig = parameters["client_config"]
    query: PageQuery = parameters["query"]
    material = [
        POLICY_VERSION,
        client_config.base_url,
        query.locale,
        str(query.birthday_start),
        str(query.birthday_end),
        [[page.number, page.seed, page.quantity] for page in plan.pages],
        parameters["reference_date"].isoformat(),
        secret_fingerprint(parameters["secret"]),
        parameters["store"].identity,
    ]
    return "ingest-" + hashlib.sha256(orjson.dumps(material)).hexdigest()


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
) -> LandedBatch:
    """Extract, anonymise and land one batch; cached, so a rerun does not refetch what already landed."""
    handle = f"{run_id}/{plan.batch_id}/{uuid4().hex}"
    try:
        extracted = extract_pages(worker, handle, plan, client_config, query)
        anonymised = anonymise_pages(worker, handle, secret, reference_date)
        started = time.perf_counter()
        landed = land_batch(worker, handle, store, plan, run_id, run_date)
    finally:
        worker.discard(handle)
    landed.timings = {
        "extract": round(extracted.seconds, 4),
        "anonymise": round(anonymised.seconds, 4),
        "land": round(time.perf_counter() - started, 4),
    }
    if landed.extracted != extracted.records or landed.persons != anonymised.persons:
        raise RuntimeError(
            f"batch {plan.batch_id}: counts changed between extraction, anonymisation and landing"
        )
    return landed


@task(name="migrate-warehouse", cache_policy=NO_CACHE, persist_result=False, retries=2, retry_delay_seconds=5)
def migrate_warehouse(warehouse: Warehouse) -> list[str]:
    """Apply pending schema migrations and re-create the views."""
    return warehouse.migrate()


@task(name="load-batch", cache_policy=NO_CACHE, persist_result=False, retries=2, retry_delay_seconds=5)
def load_batch(warehouse: Warehouse, store: LandingStore, landed: LandedBatch, run_id: str) -> int:
    """Append the landed files to the warehouse's landing layer (replacing this run's earlier copy)."""
    persons_file = store.read_bytes(landed.persons_key)
    if hashlib.sha256(persons_file).hexdigest() != landed.persons_sha256:
        raise RuntimeError(f"batch {landed.batch_id}: landed file changed since it was written")
    persons = parquet_to_table(persons_file)
    quarantine = parquet_to_table(store.read_bytes(landed.quarantine_key))
    return warehouse.load_batch(landed, persons, quarantine, run_id)


@load_batch.on_rollback
def _hold_back_batch(txn: Transaction) -> None:
    """Whatever failed after loading, the batch stays in landing, visibly marked as not merged."""
    warehouse: Warehouse = txn.get("warehouse")
    warehouse.hold_back_batch(txn.get("run_id"), txn.get("batch_id"))


@task(name="validate-batch", cache_policy=NO_CACHE, persist_result=False)
def validate_batch(
    warehouse: Warehouse, gate: RemoteValidationGate, landed: LandedBatch, run_id: str
) -> GateResult:
    """Run the GX suite on the batch as the warehouse holds it; raise BatchRejected if it fails."""
    frame = warehouse.read_batch(run_id, landed.batch_id)
    expected = landed.extracted - landed.quarantined - landed.duplicates
    result = gate.validate(frame, landed.batch_id, expected)
    warehouse.record_validation(run_id, landed.batch_id, result.success, result.failed, result.docs_page)
    if not result.success:
        raise BatchRejected(landed.batch_id, result.failed, result.statistics, result.docs_page)
    return result


@task(name="merge-batch", cache_policy=NO_CACHE, persist_result=False, retries=2, retry_delay_seconds=5)
def merge_batch(warehouse: Warehouse, landed: LandedBatch, run_id: str) -> MergeResult:
    """MERGE the validated batch into staging on person_key (all or nothing)."""
    return warehouse.merge_batch(run_id, landed.batch_id)


@task(name="build-report", cache_policy=NO_CACHE, persist_result=False, retries=2, retry_delay_seconds=5)
def build_report(warehouse: Warehouse) -> Report:
    """Answer the reporting questions from the reporting views."""
    return warehouse.read_report()


def _publish_artifacts(report: Report, docs_index: str, run_id: str) -> None:
    """Report tables and the data docs link as Prefect artifacts (aggregates only)."""
    create_table_artifact(
        key="persons-report",
        table=[{"metric": name, "value": value} for name, value in summary_rows(report)],
        description=f"Persons report of run {run_id}",
    )
    create_table_artifact(
        key="persons-top-gmail-countries",
        table=report.top_gmail_countries,
        description="Countries with the most Gmail users",
    )
    create_table_artifact(
        key="persons-age-groups", table=report.age_groups, description="Persons per age group"
    )
    create_markdown_artifact(
        key="persons-data-docs",
        markdown=f"# Validation data docs\n\n[Run {run_id}]({_link(docs_index)})\n\n`{docs_index}`\n",
        description="Great Expectations data docs of this run",
    )


def _link(location: str) -> str:
    """A clickable form of a file path or s3:// URL."""
    return Path(location).as_uri() if location.startswith("/") else location


def log_event(logger: Any, event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """One structured line per event: `event=<name> key=value ...` (counts, ids, durations; never values)."""
    parts = [f"event={event}"]
    for key, value in fields.items():
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        parts.append(f"{key}={json.dumps(text) if (' ' in text or not text) else text}")
    logger.log(level, " ".join(parts))


@dataclass
class StageClock:
    """Seconds spent per stage over a run (summed over batches)."""

    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        """Add the duration of the block to `stage`."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - started

    def rounded(self) -> dict[str, float]:
        """Stage seconds rounded for reports."""
        return {stage: round(value, 4) for stage, value in self.seconds.items()}


@dataclass
class RunContext:
    """What every step of one run shares."""

    run_id: str
    run_date: date
    params: RunParameters
    settings: PipelineSettings
    secret: SecretStr
    targets: Targets
    store: LandingStore
    warehouse: Warehouse
    worker: IngestWorker
    gate_ready: Future[RemoteValidationGate]
    clock: StageClock = field(default_factory=StageClock)
    started_at: datetime = field(default_factory=utc_now)
    resources: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def gate(self) -> RemoteValidationGate:
        """The run's validation gate (built in the background: importing GX takes seconds)."""
        return self.gate_ready.result()

    @property
    def data_dir(self) -> Path:
        """The run's data folder, absolute."""
        return self.params.data_dir.resolve()


@flow(
    name=FLOW_NAME,
    on_failure=[notify_failure],
    on_crashed=[notify_failure],
    task_runner=ThreadPoolTaskRunner(max_workers=4),  # type: ignore[arg-type]  # Prefect's generic is too narrow
    persist_result=False,
)
def persons_pipeline(
    total: int | None = None,
    batch_size: int | None = None,
    pages_per_batch: int | None = None,
    seed: int | None = None,
    locale: str | None = None,
    birthday_start: date | None = None,
    birthday_end: date | None = None,
    reference_date: date | None = None,
    api_url: str | None = None,
    data_dir: str | None = None,
    warehouse: str | None = None,
    landing_url: str | None = None,
    window: str | None = None,
    report_json: str | None = None,
) -> dict[str, Any]:
    """Extract persons from the Faker API, anonymise, land, validate, merge and report (None = setting)."""
    settings = get_settings()
    params = resolve_parameters(
        settings,
        total=total,
        batch_size=batch_size,
        pages_per_batch=pages_per_batch,
        seed=seed,
        locale=locale,
        birthday_start=birthday_start,
        birthday_end=birthday_end,
        reference_date=reference_date,
        api_url=api_url,
        data_dir=data_dir,
        warehouse=warehouse,
        landing_url=landing_url,
        window=window,
        report_json=report_json,
    )
    secret = settings.person_key_secret()
    settings.require_real_secret(secret)
    started = time.perf_counter()
    data_dir_path = params.data_dir.resolve()
    run_id = str(flow_run.get_id() or f"local-{datetime.now(UTC):%Y%m%dT%H%M%S}")
    targets = resolve_targets(settings, params)
    # Everything that can be wrong with the destinations fails here, before any data moves.
    store = make_landing_store(targets, settings)
    store.check_access()
    worker = IngestWorker()
    worker.start()
    try:
        with (
            warehouse_slot(targets, settings, data_dir_path),
            ThreadPoolExecutor(1, thread_name_prefix="gate") as background,
            make_warehouse(
                targets, data_dir_path, settings, params.pages_per_batch * params.batch_size
            ) as warehouse_,
        ):
            run = RunContext(
                run_id=run_id,
                run_date=datetime.now(UTC).date(),
                params=params,
                settings=settings,
                secret=secret,
                targets=targets,
                store=store,
                warehouse=warehouse_,
                worker=worker,
                gate_ready=background.submit(RemoteValidationGate, data_dir_path / "data_docs", run_id),
            )
            get_run_logger().info(
                "run %s: environment %s, warehouse %s (%s), landing %s",
                run_id,
                targets.environment,
                targets.warehouse,
                warehouse_.location,
                store.identity,
            )
            try:
                applied = migrate_warehouse(warehouse_)
                if applied:
                    get_run_logger().info("applied migrations: %s", ", ".join(applied))
                batches, problems = process_batches(run)
            finally:
                run.resources["raw_data_worker"] = worker.resources()
                worker.close()
                with run.clock.measure("docs"):
                    run.gate.build_docs()
                    write_docs_home(data_dir_path / "data_docs")
                run.resources["validation_gate"] = run.gate.resources()
                run.gate.close()
            return finish_run(run, batches, problems, started)
    finally:
        worker.close()


@contextmanager
def warehouse_slot(targets: Targets, settings: PipelineSettings, data_dir: Path) -> Iterator[None]:
    """Take a turn on the warehouse: a Prefect global concurrency limit per warehouse (1 per DuckDB file)."""
    place = (
        str(data_dir / "warehouse.duckdb")
        if targets.warehouse == "duckdb"
        else str(targets.snowflake_database)
    )
    name = f"persons-warehouse-{targets.warehouse}-{hashlib.sha256(place.encode()).hexdigest()[:10]}"
    limit = 1 if targets.warehouse == "duckdb" else settings.snowflake_concurrent_runs
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, limit)
    logger = get_run_logger()
    waited = time.perf_counter()
    with concurrency(name, occupy=1, timeout_seconds=settings.warehouse_slot_timeout_s, strict=True):
        logger.info(
            "event=warehouse_slot name=%s limit=%d waited_s=%.2f", name, limit, time.perf_counter() - waited
        )
        yield


def result_storage_for(run: RunContext) -> Any:
    """Where cached landed-batch results live: beside the landed files (the cache is valid only with them)."""
    if run.targets.lands_in_s3:
        from flows.landing_s3 import S3LandingStore  # noqa: PLC0415

        assert isinstance(run.store, S3LandingStore)
        storage = run.store.bucket.model_copy(update={"bucket_folder": f"{run.store.prefix}/.prefect-cache"})
        # Prefect wants result storage saved server-side; the block holds names and an endpoint, no secret.
        name = "persons-cache-" + hashlib.sha256(run.store.identity.encode()).hexdigest()[:12]
        storage.save(name, overwrite=True)
        return storage
    return run.data_dir / ".prefect-cache"


def process_batches(run: RunContext) -> tuple[list[dict[str, Any]], list[str]]:
    """Ingest batches (a few ahead, in worker threads) and publish each in order; return them and problems."""
    logger = get_run_logger()
    plans = plan_batches(run.params)
    log_event(
        logger,
        "run_planned",
        run_id=run.run_id,
        persons=run.params.total,
        batches=len(plans),
        pages_per_batch=run.params.pages_per_batch,
        page_size=run.params.batch_size,
        warehouse=run.targets.warehouse,
    )
    client_config = ClientConfig.from_settings(run.settings, run.params.api_url)
    query = PageQuery(run.params.locale, run.params.birthday_start, run.params.birthday_end)
    ingest = ingest_batch.with_options(result_storage=result_storage_for(run))

    def submit(plan: BatchPlan, refresh: bool = False) -> PrefectFuture[LandedBatch]:
        runner = ingest.with_options(refresh_cache=True) if refresh else ingest
        return runner.submit(
            plan,
            client_config,
            query,
            run.secret,
            run.params.reference_date,
            run.store,
            run.run_id,
            run.run_date,
            run.worker,
        )

    progress = cast(
        UUID,
        create_progress_artifact(progress=0.0, description=f"Extraction: batches landed by run {run.run_id}"),
    )
    landed_count = 0
    batches: list[dict[str, Any]] = []
    problems: list[str] = []
    pending: deque[tuple[BatchPlan, PrefectFuture[LandedBatch]]] = deque()
    queue = deque(plans)
    while queue or pending:
        while queue and len(pending) < run.settings.batches_in_flight:
            plan = queue.popleft()
            pending.append((plan, submit(plan)))
        plan, future = pending.popleft()
        with run.clock.measure("wait_for_ingest"):
            try:
                landed = future.result()
                if not run.store.exists(landed.persons_key) or not run.store.exists(landed.quarantine_key):
                    log_event(
                        logger,
                        "batch_cache_stale",
                        run_id=run.run_id,
                        batch_id=plan.batch_id,
                        level=logging.WARNING,
                    )
                    landed = submit(plan, refresh=True).result()
            except Exception as exc:
                problems.append(f"batch {plan.batch_id} could not be ingested: {exc}")
                log_event(
                    logger,
                    "batch_ingest_failed",
                    run_id=run.run_id,
                    batch_id=plan.batch_id,
                    error=str(exc),
                    level=logging.ERROR,
                )
                continue
        landed_count += 1
        update_progress_artifact(progress, progress=100.0 * landed_count / len(plans))
        fresh = landed.landed_by_run == run.run_id
        log_event(
            logger,
            "batch_landed",
            run_id=run.run_id,
            batch_id=landed.batch_id,
            cached=not fresh,
            extracted=landed.extracted,
            persons=landed.persons,
            quarantined=landed.quarantined,
            duplicates=landed.duplicates,
            requests=landed.fetch.get("requests", 0),
            retries=landed.fetch.get("retries", 0),
            **cast(dict[str, Any], {f"{stage}_s": seconds for stage, seconds in landed.timings.items()}),
        )
        for stage, seconds in landed.timings.items():
            run.clock.seconds[stage] += seconds if fresh else 0.0
        status = publish_batch(run, landed)
        if status != "merged":
            problems.append(status)
        batches.append({**landed.to_dict(), "merged": status == "merged", "cached": not fresh})
    return batches, problems


def publish_batch(run: RunContext, landed: LandedBatch) -> str:
    """Load, validate and merge one batch inside a transaction; 'merged' or a one-line reason it was not."""
    logger = get_run_logger()
    started = time.perf_counter()
    try:
        with transaction() as txn:
            txn.set("warehouse", run.warehouse)
            txn.set("run_id", run.run_id)
            txn.set("batch_id", landed.batch_id)
            with run.clock.measure("load"):
                load_batch(run.warehouse, run.store, landed, run.run_id)
            with run.clock.measure("validate"):
                validate_batch(run.warehouse, run.gate, landed, run.run_id)
            with run.clock.measure("merge"):
                merged = merge_batch(run.warehouse, landed, run.run_id)
    except BatchRejected as rejected:
        log_event(
            logger,
            "batch_rejected",
            run_id=run.run_id,
            batch_id=landed.batch_id,
            failed_expectations=",".join(rejected.failed),
            data_docs=rejected.docs,
            level=logging.ERROR,
        )
        return (
            f"batch {landed.batch_id} rejected by the validation gate (failed: {', '.join(rejected.failed)})"
        )
    except Exception as exc:
        log_event(
            logger,
            "batch_not_merged",
            run_id=run.run_id,
            batch_id=landed.batch_id,
            error=f"{type(exc).__name__}: {exc}",
            level=logging.ERROR,
        )
        return f"batch {landed.batch_id} not merged: {type(exc).__name__}: {exc}"
    log_event(
        logger,
        "batch_merged",
        run_id=run.run_id,
        batch_id=landed.batch_id,
        persons=landed.persons,
        inserted=merged.inserted,
        staging_rows=merged.staging_rows,
        publish_s=time.perf_counter() - started,
    )
    return "merged"


def process_resources(run: RunContext) -> dict[str, dict[str, float]]:
    """CPU seconds and peak RSS of each of the run's processes: orchestrator, raw-data worker, gate."""
    return {"orchestrator": own_resources(), **run.resources}


def finish_run(
    run: RunContext, batches: list[dict[str, Any]], problems: list[str], started: float
) -> dict[str, Any]:
    """Report (views, files, artifacts, stdout) and manifest; PipelineFailed if a batch was not published."""
    logger = get_run_logger()
    with run.clock.measure("report"):
        report = build_report(run.warehouse)
        docs_folder = run.gate.docs_dir if run.gate.index_path.exists() else run.data_dir / "data_docs"
        docs_location = run.store.upload_folder(docs_folder, f"data_docs/{docs_folder.name}")
        docs_index = f"{docs_location}/index.html"
        context = {
            "run_id": run.run_id,
            "reference_date": run.params.reference_date.isoformat(),
            "environment": run.targets.environment,
            "warehouse": run.targets.warehouse,
            "landing": run.store.identity,
            "data_docs": docs_index,
        }
        report_dir = run.data_dir / "reports" / run.run_id
        write_report_files(report, report_dir, context)
        reports_location = run.store.upload_folder(report_dir, f"reports/{run.run_id}")
        _publish_artifacts(report, docs_index, run.run_id)
    wall = round(time.perf_counter() - started, 3)
    if run.params.report_json:
        run.params.report_json.parent.mkdir(parents=True, exist_ok=True)
        measured = {"stages": run.clock.rounded(), "wall_seconds": wall, "resources": process_resources(run)}
        run.params.report_json.write_bytes(render_json(report, {**context, **measured}))
    manifest = {
        "run_id": run.run_id,
        "parameters": orjson.loads(run.params.model_dump_json()),
        "policy_version": POLICY_VERSION,
        "batches": batches,
        "problems": problems,
        "stages_seconds": run.clock.rounded(),
        "wall_seconds": wall,
        "data_docs": docs_index,
        "report_dir": reports_location,
    }
    manifest_key = write_manifest(run.store, run.run_date, run.run_id, manifest)
    window = run.params.load_window
    if window is not None:
        merged = sum(batch["persons"] for batch in batches if batch["merged"])
        status = "failed" if problems else "completed"
        run.warehouse.record_window(window, status, run.run_id, merged, run.started_at)
        log_event(
            logger, "window_recorded", run_id=run.run_id, window=window.key, status=status, persons=merged
        )
    print(render_summary(report))
    print(f"data docs: {docs_index}")
    print(f"report:    {report_dir}")
    log_event(
        logger,
        "run_finished",
        run_id=run.run_id,
        total_persons=report.total_persons,
        quarantined=report.quarantined,
        rejected_batches=report.rejected_batches,
        problems=len(problems),
        wall_s=wall,
        data_docs=docs_index,
        manifest=run.store.uri(manifest_key),
    )
    if problems:
        raise PipelineFailed(
            f"{len(problems)} batch(es) were not published: "
            + "; ".join(problems)
            + f"; data docs: {docs_index}"
        )
    return {
        "run_id": run.run_id,
        "report": report.to_dict(),
        "data_docs": docs_index,
        "report_dir": reports_location,
        "manifest": run.store.uri(manifest_key),
    }


__all__ = ["FLOW_NAME", "PipelineFailed", "persons_pipeline"]
