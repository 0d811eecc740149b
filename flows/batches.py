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
from flows.generations import PlannedBatch, Publication, record_translated_tombstones
from flows.landing.files import LandedBatch
from flows.monitoring.record import announce_merge
from flows.rawdata.client import ClientConfig, SourceUnreachable
from flows.run_context import RunContext, log_event
from flows.runtime.preflight import is_disk_full
from flows.stages import ingest_batch, load_batch, merge_batch, secret_fingerprint, validate_batch
from flows.targets import result_storage


def process_batches(run: RunContext, publication: Publication) -> tuple[list[dict[str, Any]], list[str]]:
    """Ingest batches (a few ahead, in worker threads) and publish each in order; return them and problems."""
    logger = get_run_logger()
    plans = publication.batches
    log_event(
        logger,
        "run_planned",
        run_id=run.run_id,
        persons=run.params.total,
        requested=publication.requested,
        skipped_pages=publication.skipped_pages,
        batches=len(plans),
        pages_per_batch=run.params.pages_per_batch,
        page_size=run.params.page_size,
        warehouse=run.targets.warehouse,
    )
    if not plans and publication.skipped_pages:
        log_event(  # a run that asked only for persons already published: say so, and how to ask for more
            logger,
            "nothing_to_fetch",
            run_id=run.run_id,
            skipped_pages=publication.skipped_pages,
            published=publication.skipped_persons,
        )
    client_config = ClientConfig.from_settings(run.settings, run.params.api_url, run.deadline_at)
    ingest = ingest_batch.with_options(result_storage=result_storage(run.targets, run.store, run.data_dir))

    def submit(planned: PlannedBatch, refresh: bool = False) -> PrefectFuture[LandedBatch]:
        label = batch_label(planned.plan.index, len(plans))
        runner = ingest.with_options(task_run_name=f"ingest-batch-{label}", refresh_cache=refresh)
        return runner.submit(
            planned.plan,
            client_config,
            planned.query,
            run.secret,
            publication.generation.reference_date,
            run.store,
            run.run_id,
            run.run_date,
            run.worker,
            publication.exclusions,
            label,
        )

    progress = cast(
        UUID,
        create_progress_artifact(progress=0.0, description=f"Extraction: batches landed by run {run.run_id}"),
    )
    landed_count = 0
    batches: list[dict[str, Any]] = []
    problems: list[str] = []
    pending: deque[tuple[PlannedBatch, PrefectFuture[LandedBatch]]] = deque()
    queue = deque(plans)
    not_started: dict[str, int] = {}
    while queue or pending:
        while queue and len(pending) < run.settings.batches_in_flight:
            planned = queue.popleft()
            refusal = run.refusal()
            if refusal:
                problems.append(f"batch {planned.plan.batch_id} not started: {refusal}")
                not_started[refusal] = not_started.get(refusal, 0) + 1
                continue
            pending.append((planned, submit(planned)))
        if not pending:
            continue
        planned, future = pending.popleft()
        plan = planned.plan
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
                    landed = submit(planned, refresh=True).result()
            except Exception as exc:
                if isinstance(exc, SourceUnreachable):  # later batches would wait as long for nothing
                    run.unreachable_source = plan.batch_id
                problems.append(f"batch {plan.batch_id} not landed: {_disk_full(run, exc) or exc}")
                run.warehouse.record_rejected_batch(
                    run.run_id,
                    plan.batch_id,
                    plan.index,
                    plan.persons,
                    str(exc)[:1000],
                    secret_fingerprint(run.secret),
                    publication.generation.generation_id,
                )
                batches.append(
                    {"batch_id": plan.batch_id, "requested": plan.persons, "merged": False, "rejected": True}
                )
                log_event(
                    logger,
                    "batch_ingest_failed",
                    run_id=run.run_id,
                    batch_id=plan.batch_id,
                    **batch_position(plan.index, len(plans)),
                    error=str(exc),
                    level=logging.ERROR,
                )
                continue
        record_translated_tombstones(run, publication)
        landed_count += 1
        update_progress_artifact(progress, progress=100.0 * landed_count / len(plans))
        fresh = landed.landed_by_run == run.run_id
        log_event(
            logger,
            "batch_landed",
            run_id=run.run_id,
            batch_id=landed.batch_id,
            **batch_position(plan.index, len(plans)),
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
        status = publish_batch(run, landed, publication, planned)
        release_free_memory()  # the batch as loaded and as validated
        if status != "merged":
            problems.append(status)
        batches.append(
            {
                **landed.to_dict(),
                "merged": status == "merged",
                "rejected": status != "merged",
                "cached": not fresh,
            }
        )
    for reason, count in not_started.items():
        log_event(logger, "batches_not_started", run_id=run.run_id, batches=count, reason=reason)
    return batches, problems


def batch_label(index: int, batches: int) -> str:
    """A batch as its task runs are named: `3-of-10` (the graph says which batch)."""
    return f"{index + 1}-of-{batches}"


def batch_position(index: int, batches: int) -> dict[str, int]:
    """A batch's place in the run, as its events carry it (batch 3 of 10)."""
    return {"batch_number": index + 1, "batches": batches}


def _disk_full(run: RunContext, exc: Exception) -> str | None:
    """A full disk as a batch's reason, naming the folder (later batches are then not started)."""
    if not is_disk_full(exc):
        return None
    run.disk_full = True
    return f"no space left on the disk of {run.data_dir} ({type(exc).__name__})"


def publish_batch(
    run: RunContext, landed: LandedBatch, publication: Publication, planned: PlannedBatch
) -> str:
    """Load, validate and merge one batch inside a transaction; 'merged' or a one-line reason it was not."""
    logger = get_run_logger()
    started = time.perf_counter()
    total = len(publication.batches)
    label, position = batch_label(planned.plan.index, total), batch_position(planned.plan.index, total)
    try:
        with transaction() as txn:
            txn.set("run_id", run.run_id)
            txn.set("batch_id", landed.batch_id)
            with run.clock.measure("load"):
                load_batch.with_options(task_run_name=f"load-batch-{label}")(
                    run.warehouse, run.store, landed, run.run_id, publication.generation
                )
            with run.clock.measure("validate"):
                validate_batch.with_options(task_run_name=f"validate-batch-{label}")(
                    run.warehouse, run.gate, landed, run.run_id
                )
            with run.clock.measure("merge"):
                merged = merge_batch.with_options(task_run_name=f"merge-batch-{label}")(
                    run.warehouse, landed, run.run_id, publication.generation, planned.published
                )
    except BatchRejected as rejected:
        log_event(
            logger,
            "batch_rejected",
            run_id=run.run_id,
            batch_id=landed.batch_id,
            **position,
            failed_expectations=",".join(rejected.failed),
            data_docs=rejected.docs,
            level=logging.ERROR,
        )
        return (
            f"batch {landed.batch_id} rejected by the validation gate (failed: {', '.join(rejected.failed)})"
        )
    except Exception as exc:
        reason = _disk_full(run, exc) or f"{type(exc).__name__}: {exc}"
        log_event(
            logger,
            "batch_not_merged",
            run_id=run.run_id,
            batch_id=landed.batch_id,
            **position,
            error=reason,
            level=logging.ERROR,
        )
        return f"batch {landed.batch_id} not merged: {reason}"
    log_event(
        logger,
        "batch_merged",
        run_id=run.run_id,
        batch_id=landed.batch_id,
        **position,
        persons=landed.persons,
        quarantined=landed.quarantined,
        duplicates=landed.duplicates,
        inserted=merged.inserted,
        staging_rows=merged.staging_rows,
        publish_s=time.perf_counter() - started,
    )
    announce_merge(run, landed.batch_id, landed.persons)
    return "merged"
