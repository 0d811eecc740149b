"""The batch loop: ingest a few batches ahead, publish each in order (write-audit-publish)."""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from typing import Any, cast
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import (
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.transactions import transaction

from flows import release_free_memory
from flows.gate.validation import BatchRejected
from flows.landing.files import LandedBatch
from flows.monitoring.monitor import announce_merge
from flows.run.context import RunContext, log_event
from flows.run.fleet import ShardFleet
from flows.run.ingest import Ingest, batch_label, batch_position, disk_full_reason
from flows.run.ledger import BatchState
from flows.run.publication import PlannedBatch, Publication, record_translated_tombstones
from flows.run.tasks import load_batch, merge_batch, validate_batch
from flows.warehouse.batch_store import MergeResult


def process_batches(run: RunContext, publication: Publication) -> None:
    """Ingest batches (a few ahead, in worker threads) and publish each in order; the run's ledger records
    each batch's outcome."""
    plans = publication.batches
    run.ledger.plan((planned.plan.batch_id, planned.plan.index, planned.plan.persons) for planned in plans)
    announce_plan(run, publication)
    ingest = ShardFleet(run, publication) if run.params.shards > 1 else Ingest(run, publication)
    progress = cast(
        UUID,
        create_progress_artifact(progress=0.0, description=f"Extraction: batches landed by run {run.run_id}"),
    )
    pending: deque[tuple[PlannedBatch, Any]] = deque()
    queue = deque(plans)
    while queue or pending:
        while queue and len(pending) < run.settings.runs.batches_in_flight:
            planned = queue.popleft()
            if refusal := run.refusal():
                run.ledger.not_started(planned.plan.batch_id, refusal)
            else:
                pending.append((planned, ingest.submit(planned)))
        if not pending:
            continue
        planned, future = pending.popleft()
        landed = ingest.result(planned, future)
        if landed is None:
            continue
        record_translated_tombstones(run, publication)
        update_progress_artifact(progress, progress=100.0 * len(run.ledger.landed_batches()) / len(plans))
        # Logged last before publishing, as before: a stop seen after this line meets the publishing.
        log_landed(run, landed, planned, len(plans), fresh=ingest.fresh(landed))
        publish_batch(run, landed, publication, planned)
        release_free_memory()  # the batch as loaded and as validated
    logger = get_run_logger()
    not_started = Counter(entry.reason for entry in run.ledger.in_state(BatchState.NOT_STARTED))
    for reason, count in not_started.items():
        log_event(logger, "batches_not_started", run_id=run.run_id, batches=count, reason=reason)


def announce_plan(run: RunContext, publication: Publication) -> None:
    """The run's plan in one event; a run that asked only for persons already published says so."""
    logger = get_run_logger()
    log_event(
        logger,
        "run_planned",
        run_id=run.run_id,
        persons=run.params.total,
        requested=publication.requested,
        skipped_pages=publication.skipped_pages,
        batches=len(publication.batches),
        pages_per_batch=run.params.pages_per_batch,
        page_size=run.params.page_size,
        warehouse=run.targets.warehouse,
    )
    if not publication.batches and publication.skipped_pages:
        log_event(  # how to ask for more is in the run's final message
            logger,
            "nothing_to_fetch",
            run_id=run.run_id,
            skipped_pages=publication.skipped_pages,
            published=publication.skipped_persons,
        )


def log_landed(
    run: RunContext, landed: LandedBatch, planned: PlannedBatch, batches: int, fresh: bool
) -> None:
    """The landed batch's event, and its stages' seconds on the run's clock (fetched by this run only)."""
    logger = get_run_logger()
    log_event(
        logger,
        "batch_landed",
        run_id=run.run_id,
        batch_id=landed.batch_id,
        **batch_position(planned.plan.index, batches),
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


def load_validate_merge(
    run: RunContext, landed: LandedBatch, publication: Publication, planned: PlannedBatch, label: str
) -> MergeResult:
    """The batch's three publishing tasks in one Prefect transaction (its rollback holds the batch back)."""
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
        with run.clock.measure("merge") as lap:
            merged = merge_batch.with_options(task_run_name=f"merge-batch-{label}")(
                run.warehouse, landed, run.run_id, publication.generation, planned.published
            )
        run.clock.merged(merged.staging_rows, lap.seconds)
        return merged


def publish_batch(
    run: RunContext, landed: LandedBatch, publication: Publication, planned: PlannedBatch
) -> None:
    """Load, validate and merge one batch inside a transaction; its outcome goes to the run's ledger."""
    logger = get_run_logger()
    started = time.perf_counter()
    total = len(publication.batches)
    label, position = batch_label(planned.plan.index, total), batch_position(planned.plan.index, total)
    try:
        merged = load_validate_merge(run, landed, publication, planned, label)
    except BatchRejected as rejected:
        run.ledger.rejected(landed.batch_id, rejected.failed)
        failed = ",".join(rejected.failed)
        log_event(
            logger,
            "batch_rejected",
            run_id=run.run_id,
            batch_id=landed.batch_id,
            **position,
            failed_expectations=failed,
            data_docs=rejected.docs,
            level=logging.ERROR,
        )
        return
    except Exception as exc:
        reason = disk_full_reason(run, exc) or f"{type(exc).__name__}: {exc}"
        run.ledger.held_back(landed.batch_id, reason)
        log_event(
            logger, "batch_not_merged", run_id=run.run_id, batch_id=landed.batch_id, **position, error=reason,
            level=logging.ERROR,
        )  # fmt: skip
        return
    run.ledger.merged(landed.batch_id)
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
    announce_merge(run.monitored, landed.batch_id, landed.persons)
