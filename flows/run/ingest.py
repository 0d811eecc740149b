"""The `ingest-batch` tasks of one run: submitted ahead in worker threads, their outcome in the run's ledger.

`Ingest` fetches in the run's own process (the raw-data worker); `flows.run.fleet.ShardFleet` is the same
face for a sharded run, whose batches land from flow runs of their own.
"""

from __future__ import annotations

import logging

from prefect import get_run_logger
from prefect.futures import PrefectFuture

from flows.landing.files import LandedBatch
from flows.rawdata.client import ClientConfig, SourceUnreachable
from flows.run.context import RunContext, log_event
from flows.run.publication import PlannedBatch, Publication
from flows.run.tasks import ingest_batch, secret_fingerprint
from flows.runtime.preflight import is_disk_full
from flows.settings import PipelineSettings
from flows.targets import result_storage
from flows.warehouse.batch_store import RejectedBatch, record_rejected_batch


def client_config(settings: PipelineSettings, api_url: str, deadline_at: float | None) -> ClientConfig:
    """The raw-data client of a run or a shard: the client's settings; requests in flight shared by the
    batches extracted at once (max_in_flight for each of batches_in_flight, lent to a batch fetched alone)."""
    fields = settings.client.client_fields()
    budget = int(fields["max_in_flight"]) * settings.runs.batches_in_flight
    return ClientConfig(base_url=api_url, deadline_at=deadline_at, process_in_flight=budget, **fields)


class BatchLanding:
    """What every way of landing a run's batches shares: a batch that did not land is recorded (ledger,
    warehouse, event) the same way; `fresh` tells the batches this run landed from those found landed."""

    def __init__(self, run: RunContext, publication: Publication) -> None:
        self.run, self.publication, self.batches = run, publication, len(publication.batches)

    def fresh(self, landed: LandedBatch) -> bool:
        """Whether this run landed the batch (an earlier run's is cached: its stages' time is not ours)."""
        return landed.landed_by_run == self.run.run_id

    def not_landed(self, planned: PlannedBatch, exc: Exception) -> None:
        run, plan = self.run, planned.plan
        if isinstance(exc, SourceUnreachable):  # later batches would wait as long for nothing
            run.ledger.halt(f"the source is unreachable (batch {plan.batch_id})")
        run.ledger.not_landed(plan.batch_id, disk_full_reason(run, exc) or str(exc))
        rejected = RejectedBatch(plan.batch_id, plan.index, plan.persons, str(exc)[:1000])
        record_rejected_batch(
            run.warehouse,
            run.run_id,
            rejected,
            secret_fingerprint(run.secret),
            self.publication.generation.generation_id,
        )
        logger = get_run_logger()
        log_event(
            logger,
            "batch_ingest_failed",
            run_id=run.run_id,
            batch_id=plan.batch_id,
            **batch_position(plan.index, self.batches),
            error=str(exc),
            level=logging.ERROR,
        )


class Ingest(BatchLanding):
    """The `ingest-batch` task of one run: submitted ahead, its result checked, its outcome in the ledger."""

    def __init__(self, run: RunContext, publication: Publication) -> None:
        super().__init__(run, publication)
        self.client = client_config(run.settings, run.params.api_url, run.deadline_at)
        self.task = ingest_batch.with_options(
            result_storage=result_storage(run.targets, run.store, run.data_dir)
        )

    def submit(self, planned: PlannedBatch, refresh: bool = False) -> PrefectFuture[LandedBatch]:
        run, label = self.run, batch_label(planned.plan.index, self.batches)
        runner = self.task.with_options(task_run_name=f"ingest-batch-{label}", refresh_cache=refresh)
        return runner.submit(
            planned.plan,
            self.client,
            planned.query,
            run.secret,
            self.publication.generation.reference_date,
            run.store,
            run.run_id,
            run.run_date,
            run.worker,
            self.publication.exclusions,
            label,
        )

    def result(self, planned: PlannedBatch, future: PrefectFuture[LandedBatch]) -> LandedBatch | None:
        """The landed batch (fetched again if its cached files are gone), or None if it could not land."""
        run, plan = self.run, planned.plan
        with run.clock.measure("wait_for_ingest"):
            try:
                landed = future.result()
                if not run.store.exists(landed.persons_key) or not run.store.exists(landed.quarantine_key):
                    logger = get_run_logger()
                    log_event(
                        logger,
                        "batch_cache_stale",
                        run_id=run.run_id,
                        batch_id=plan.batch_id,
                        level=logging.WARNING,
                    )
                    landed = self.submit(planned, refresh=True).result()
            except Exception as exc:
                self.not_landed(planned, exc)
                return None
        run.ledger.landed(landed, cached=not self.fresh(landed))
        return landed


def batch_label(index: int, batches: int) -> str:
    """A batch as its task runs are named: `3-of-10` (the graph says which batch)."""
    return f"{index + 1}-of-{batches}"


def batch_position(index: int, batches: int) -> dict[str, int]:
    """A batch's place in the run, as its events carry it (batch 3 of 10)."""
    return {"batch_number": index + 1, "batches": batches}


def disk_full_reason(run: RunContext, exc: Exception) -> str | None:
    """A full disk as a batch's reason, naming the folder (later batches are then not started)."""
    if not is_disk_full(exc):
        return None
    run.ledger.halt(f"the disk of {run.data_dir} is full")
    return f"no space left on the disk of {run.data_dir} ({type(exc).__name__})"
