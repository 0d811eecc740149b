"""Emit a run's OpenLineage events: START when it begins, COMPLETE or FAIL when it ends; never fail the run.

Events always go to a file, `<data_dir>/lineage/<run_id>.jsonl` (PERSONS_LINEAGE_DIR), one JSON event per line
(openlineage-python's file transport); with PERSONS_LINEAGE_URL they are also posted to that receiver (its
HTTP transport; Marquez takes them at api/v1/lineage). A transport that fails logs one line and the run goes
on: the file keeps the events for a later replay. Landing in S3, the file is also copied to
`<prefix>/lineage/<run_id>.jsonl`. openlineage-python is imported only when a run emits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger

from flows.run.context import RunContext, log_event
from flows.warehouse import catalog

if TYPE_CHECKING:
    from openlineage.client.event_v2 import RunEvent
    from openlineage.client.transport.transport import Transport

    from flows.lineage.events import JobRef, Places, Relation, RunCounts

DESCRIPTION = "Faker API persons, anonymised, landed, validated, merged, modelled by dbt and reported."
# No retries inside the transport: a receiver that is down costs one attempt and one log line per event (the
# events file keeps them); urllib3 would otherwise log each retry and wait between them.
HTTP_RETRY = {"total": 0, "connect": 0, "read": 0}


def events_file(run: RunContext) -> Path:
    """Where the run's events are written (one JSON event per line)."""
    folder = run.settings.lineage.dir or run.data_dir / "lineage"
    return folder.resolve() / f"{run.run_id}.jsonl"


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


@dataclass
class LineageEmitter:
    """The run's transports and what its events are about."""

    run: RunContext
    job: JobRef
    places: Places
    transports: list[tuple[str, Transport]]
    file: Path

    def emit(self, event: RunEvent, started: float) -> None:
        """Send the event through every transport; a failing one logs one line and is skipped."""
        sent = []
        for label, transport in self.transports:
            try:
                transport.emit(event)
                sent.append(label)
            except Exception as exc:
                _warn(
                    self.run.run_id,
                    "lineage_not_sent",
                    exc,
                    event_type=str(event.eventType.value if event.eventType else ""),
                    transport=label,
                )
        log_event(
            get_run_logger(),
            "lineage_emitted",
            run_id=self.run.run_id,
            event_type=str(event.eventType.value if event.eventType else ""),
            datasets=len(event.inputs or []) + len(event.outputs or []),
            sent_to=",".join(sent) or "nothing",
            seconds=time.perf_counter() - started,
        )

    def start(self, started: float) -> None:
        """The START event (`started`: when making the emitter began, importing the library included)."""
        from flows.lineage.events import start_event  # noqa: PLC0415

        self.emit(start_event(self.job, self.run.run_id, datetime.now(UTC), self.places), started)

    def end(self, failure: BaseException | None) -> None:
        """COMPLETE or FAIL, with the datasets' row counts as the warehouse knows them now."""
        started = time.perf_counter()
        from flows.lineage.events import end_event, one_line_reason  # noqa: PLC0415

        counts, relations = self._measure()
        reason = None if failure is None else one_line_reason(failure)
        event = end_event(
            self.job, self.run.run_id, datetime.now(UTC), self.places, counts, relations, reason
        )
        self.emit(event, started)
        for _, transport in self.transports:
            transport.close()
        if self.run.targets.lands_in_s3 and self.file.is_file():
            try:
                self.run.store.write_bytes(f"lineage/{self.file.name}", self.file.read_bytes())
            except Exception as exc:
                _warn(self.run.run_id, "lineage_file_not_uploaded", exc)

    @property
    def counts_published(self) -> bool:
        """Whether the end event counts the rows of the relations above staging: when this run built them.
        A run that only merged leaves them uncounted: counting a k-anonymous view computes it again (19 s at
        2,000,000 persons, growing with the warehouse)."""
        return self.run.settings.lineage.count_published and self.run.ledger.models_built

    def _measure(self) -> tuple[RunCounts | None, list[Relation]]:
        """The run's batch counts, the layers' columns, and the rows each published relation holds."""
        from flows.lineage.events import (  # noqa: PLC0415
            is_published,
            relations_from_columns,
            run_counts,
        )

        warehouse = self.run.warehouse
        try:
            with warehouse.cursor() as cursor:
                batches = catalog.run_batch_rows(warehouse, cursor, self.run.run_id)
                relations = relations_from_columns(catalog.layer_columns(warehouse, cursor))
                measured = [
                    replace(relation, rows=catalog.count_rows(cursor, _quoted(relation)))
                    if is_published(relation) and self.counts_published
                    else relation
                    for relation in relations
                ]
        except Exception as exc:  # the warehouse may be what failed: the event goes out without counts
            _warn(self.run.run_id, "lineage_counts_unavailable", exc)
            return None, []
        return run_counts(batches, self.run.run_id), measured


def _warn(run_id: str, name: str, exc: BaseException, **fields: Any) -> None:
    """One warning line for lineage that could not be done; the run goes on."""
    from flows.lineage.events import one_line_reason  # noqa: PLC0415

    error = one_line_reason(exc)[:300]
    log_event(get_run_logger(), name, run_id=run_id, **fields, error=error, level=logging.WARNING)


def _quoted(relation: Relation) -> str:
    """schema.table as quoted identifiers, exactly as the catalog spells them."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in (relation.schema, relation.name))


def open_emitter(run: RunContext, job_name: str) -> LineageEmitter:
    """The run's job, places and transports (file always; HTTP with PERSONS_LINEAGE_URL)."""
    import prefect  # noqa: PLC0415
    from openlineage.client.transport.file import FileConfig, FileTransport  # noqa: PLC0415
    from openlineage.client.transport.http import (  # noqa: PLC0415
        ApiKeyTokenProvider,
        HttpConfig,
        HttpTransport,
        TokenProvider,
    )
    from openlineage.client.transport.http_common import DEFAULT_RETRY_CONFIG  # noqa: PLC0415

    from flows.lineage.events import (  # noqa: PLC0415
        JobRef,
        Places,
        api_dataset,
        landing_dataset,
        warehouse_places,
    )

    settings, targets = run.settings, run.targets
    namespace, database = warehouse_places(
        targets.warehouse, run.warehouse.location, settings.snowflake.account, targets.snowflake_database
    )
    places = Places(
        api=api_dataset(run.params.api_url),
        landing=landing_dataset(run.store.identity),
        warehouse_namespace=namespace,
        warehouse_database=database,
        upper_case=targets.warehouse == "snowflake",
    )
    job = JobRef(
        namespace=settings.lineage.namespace or f"persons-{targets.environment}",
        name=job_name,
        description=DESCRIPTION,
        prefect_version=prefect.__version__,
        pipeline_version=_package_version("persons-pipeline"),
        tags={
            "environment": targets.environment,
            "warehouse": targets.warehouse,
            "landing": "s3" if targets.lands_in_s3 else "file",
            "prefect_flow_run_id": run.run_id,
        },
    )
    file = events_file(run)
    file.parent.mkdir(parents=True, exist_ok=True)
    transports: list[tuple[str, Any]] = [
        ("file", FileTransport(FileConfig(log_file_path=str(file), append=True)))
    ]
    if settings.lineage.url:
        key = settings.lineage.api_key
        config = HttpConfig(
            url=settings.lineage.url,
            endpoint=settings.lineage.endpoint,
            timeout=settings.lineage.timeout_s,
            auth=ApiKeyTokenProvider({"apiKey": key.get_secret_value()}) if key else TokenProvider({}),
            retry={**DEFAULT_RETRY_CONFIG, **HTTP_RETRY},
        )
        transports.append(("http", HttpTransport(config)))
    return LineageEmitter(run, job, places, transports, file)


@contextmanager
def run_lineage(run: RunContext, job_name: str) -> Iterator[None]:
    """START when the block begins; COMPLETE, or FAIL with the one-line reason, when it ends."""
    emitter = None
    if run.settings.lineage.enabled:
        try:
            started = time.perf_counter()
            emitter = open_emitter(run, job_name)
            emitter.start(started)
        except Exception as exc:  # lineage never fails the run: one line, and the run goes on without it
            log_event(
                get_run_logger(),
                "lineage_disabled",
                run_id=run.run_id,
                error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300],
                level=logging.WARNING,
            )
            emitter = None
    try:
        yield
    except BaseException as exc:
        if emitter is not None:
            _end_quietly(emitter, exc)
        raise
    if emitter is not None:
        _end_quietly(emitter, None)


def _end_quietly(emitter: LineageEmitter, failure: BaseException | None) -> None:
    """End the run's lineage; whatever goes wrong here is logged, never raised."""
    try:
        emitter.end(failure)
    except Exception as exc:
        log_event(
            get_run_logger(),
            "lineage_not_ended",
            run_id=emitter.run.run_id,
            error=type(exc).__name__,
            level=logging.WARNING,
        )
