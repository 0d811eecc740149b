"""The batch loop: ingest a few batches ahead, publish each in order (write-audit-publish)."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, cast
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import (
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.futures import PrefectFuture
from prefect.transactions import transaction

from flows import release_free_memory
from flows.gate.validation import BatchRejected
from flows.landing.files import LandedBatch
from flows.plan import BatchPlan, plan_batches
from flows.rawdata.client import ClientConfig, PageQuery
from flows.run_context import RunContext, log_event
from flows.stages import ingest_batch, load_batch, merge_batch, validate_batch
from flows.targets import result_storage


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
        page_size=run.params.page_size,
        warehouse=run.targets.warehouse,
    )
    client_config = ClientConfig.from_settings(run.settings, run.params.api_url)
    query = PageQuery(run.params.locale, run.params.birthday_start, run.params.birthday_end)
    ingest = ingest_batch.with_options(result_storage=result_storage(run.targets, run.store, run.data_dir))

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
        release_free_memory()  # the batch as loaded and as validated
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
