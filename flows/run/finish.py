"""The end of a run: report (files, artifacts, stdout), manifest, load window; fail unless all published."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_table_artifact,
)

from flows.anonymise.transform import POLICY_VERSION
from flows.gate.offline_docs import upload_site
from flows.landing.files import write_manifest
from flows.monitoring.metrics import Breach
from flows.monitoring.monitor import record_run_quality, thresholds_of
from flows.report.page import PAGE_NAME, Links, publish_report_page, write_report_page
from flows.report.reads import read_quality_trend
from flows.report.render import Report, answer_rows, render_json, render_summary, write_report_files
from flows.run.context import PipelineFailed, RunContext, log_event
from flows.run.dbt_stage import dbt_docs_location
from flows.run.ledger import RunLedger
from flows.run.publication import Publication
from flows.run.tasks import build_report
from flows.runtime.docs_server import ensure_docs_server, register_folder
from flows.runtime.preflight import is_disk_full
from flows.runtime.remote import own_resources
from flows.warehouse.watermarks import record_window

# A partial report folder older than this belongs to a run that died while writing it (one run writes a
# report in seconds).
PARTIAL_REPORT_AGE_S = 3600.0


def process_resources(run: RunContext) -> dict[str, dict[str, float]]:
    """CPU seconds and peak RSS of each of the run's processes: orchestrator, raw-data worker, gate."""
    return {"orchestrator": own_resources(), **run.workers.resources}


@contextmanager
def full_disk_verdict(run: RunContext, step: str) -> Iterator[None]:
    """A full disk during `step` ends the run with one line: what was published, and which disk is full."""
    try:
        yield
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        verdict = (
            run.ledger.failure(None)
            if run.ledger.problems
            else f"all {len(run.ledger.manifest_batches())} batches were merged"
        )
        raise PipelineFailed(
            f"{verdict}; {step} could not be written: no space left on the disk of {run.data_dir}"
        ) from None


@dataclass(frozen=True)
class Written:
    """Where a run's report and docs went, and how a browser opens them."""

    report: Report
    context: dict[str, Any]
    docs_index: str | None  # None: the run validated no batch, so it has no validation pages
    reports_location: str
    link: Callable[[str], str]

    @property
    def report_page(self) -> str:
        return self.link(f"{self.reports_location}/{PAGE_NAME}")


def finish_run(run: RunContext, publication: Publication) -> dict[str, Any]:
    """Report (views, files, artifacts, stdout) and manifest; PipelineFailed if a batch was not published."""
    with full_disk_verdict(run, "the report"):
        with run.clock.measure("report"):
            written = write_report(run, publication)
        wall = round(time.perf_counter() - run.started, 3)
        if run.params.report_json:
            run.params.report_json.parent.mkdir(parents=True, exist_ok=True)
            measured = {
                "stages": run.clock.rounded(),
                "merges": run.clock.merges,
                "wall_seconds": wall,
                "resources": process_resources(run),
            }
            run.params.report_json.write_bytes(render_json(written.report, {**written.context, **measured}))
        manifest_key = write_manifest(
            run.store, run.run_date, run.run_id, manifest(run, publication, written, wall)
        )
        record_load_window(run)
        breaches = record_run_quality(  # monitoring.*, breach and failure events
            run.monitored,
            thresholds_of(run.settings),
            run.ledger.manifest_batches(),
            run.ledger.problems,
            written.report,
        )
        print_summary(run, written, breaches)
        log_event(
            get_run_logger(),
            "run_finished",
            run_id=run.run_id,
            total_persons=written.report.total_persons,
            quarantined=written.report.quarantined,
            rejected_batches=written.report.rejected_batches,
            problems=len(run.ledger.problems),
            breaches=len(breaches),
            wall_s=wall,
            data_docs=written.docs_index,
            manifest=run.store.uri(manifest_key),
        )
        if not run.ledger.published:
            raise PipelineFailed(run.ledger.failure(written.docs_index))
        return {
            "run_id": run.run_id,
            "report": written.report.to_dict(),
            "data_docs": written.docs_index,
            "report_dir": written.reports_location,
            "manifest": run.store.uri(manifest_key),
            "message": run_message(publication, run.ledger, written.report_page),
        }


def write_report(run: RunContext, publication: Publication) -> Written:
    """The report from the warehouse: its files and page (whole or not at all), uploaded, and as artifacts."""
    report = build_report(run.warehouse)
    docs_folder = run.gate.docs_dir
    docs_index: str | None = None
    if run.gate.index_path.exists():
        docs_index = upload_site(run.store, docs_folder)
    context = {
        "run_id": run.run_id,
        "started_at": run.started_at.isoformat(timespec="seconds"),
        "reference_date": report.reference_date,
        "key_fingerprint": report.key_fingerprint,
        "generation_id": publication.generation.generation_id,
        "generation_switched": publication.switched,
        "environment": run.targets.environment,
        "warehouse": run.targets.warehouse,
        "landing": run.store.identity,
        "data_docs": docs_index,
    }
    report_dir = run.data_dir / "reports" / run.run_id
    with report_folder(report_dir) as folder:  # whole or not at all: a run killed here leaves none
        write_report_files(report, folder, context)
        write_report_page(  # the answers, their charts, quality, protection, metadata; problems first
            report,
            read_quality_trend(run.warehouse, run.settings.models.report_trend_runs),
            folder,
            context,
            Links(  # relative: the same in S3
                os.path.relpath(docs_folder / "index.html", report_dir) if docs_index else None,
                os.path.relpath(docs_folder.parent / "index.html", report_dir),
            ),
            run.ledger.problems,
        )
    reports_location = run.store.upload_folder(report_dir, f"reports/{run.run_id}")
    link = browser_links(run)
    _publish_artifacts(report, docs_index, run.run_id, link)
    publish_report_page(reports_location, run.run_id, report, link)
    return Written(report, context, docs_index, reports_location, link)


def manifest(run: RunContext, publication: Publication, written: Written, wall: float) -> dict[str, Any]:
    """The run's manifest: parameters, generation, where every record went, each batch, timings."""
    generation = publication.generation
    return {
        "run_id": run.run_id,
        "parameters": orjson.loads(run.params.model_dump_json()),
        "policy_version": POLICY_VERSION,
        "generation": {
            "generation_id": generation.generation_id,
            "key_fingerprint": generation.key_fingerprint,
            "reference_date": generation.reference_date.isoformat(),
            "rebuilt": generation.rebuilding,
            "switched": publication.switched,
        },
        "records": run.ledger.accounting(publication.requested, publication.skipped_persons).as_dict(),
        "batches": run.ledger.manifest_batches(),
        "problems": run.ledger.problems,
        "stages_seconds": run.clock.rounded(),
        "wall_seconds": wall,
        "data_docs": written.docs_index,
        "report_dir": written.reports_location,
    }


def record_load_window(run: RunContext) -> None:
    """A run of a load window (the daily flow's day, a backfill's window) records it, completed or failed."""
    window = run.params.load_window
    if window is None:
        return
    merged = run.ledger.merged_persons
    status = "completed" if run.ledger.published else "failed"
    record_window(run.warehouse, window, status, run.run_id, merged, run.started_at)
    log_event(
        get_run_logger(),
        "window_recorded",
        run_id=run.run_id,
        window=window.key,
        status=status,
        persons=merged,
    )


def print_summary(run: RunContext, written: Written, breaches: Sequence[Breach]) -> None:
    """The report's answers and where to look, on stdout; the report page last."""
    print(render_summary(written.report))
    print(breaches_line(breaches))
    if written.docs_index:
        print(f"data docs:   {written.link(written.docs_index)}")
    if model_docs := dbt_docs_location(run.data_dir, run.store):  # the models, their columns, the lineage
        print(f"model docs:  {written.link(model_docs)}")
    print(f"report page: {written.report_page}")  # the last line: where to look


def run_message(publication: Publication, ledger: RunLedger, report_page: str) -> str:
    """What a completed run did, in one line (its final state's message)."""
    if not publication.batches and publication.skipped_pages:
        return (
            f"nothing new to fetch: all {publication.skipped_pages:,} pages of this run were published "
            f"before ({publication.skipped_persons:,} persons); ask for more with a larger total, or for "
            f"other persons with another seed; report page: {report_page}"
        )
    batches = len(ledger.manifest_batches())
    return (
        f"published {ledger.merged_persons:,} new persons in {batches} batch(es); report page: {report_page}"
    )


def breaches_line(breaches: Sequence[Breach]) -> str:
    """The run's quality against its thresholds, in one line: what was beyond which threshold."""
    if not breaches:
        return "quality:                       within every threshold (PERSONS_MONITOR_*)"
    described = "; ".join(
        f"{breach.metric} of {breach.subject} {_figure(breach.value, breach.metric)} "
        f"above {_figure(breach.threshold, breach.metric)}"
        for breach in breaches
    )
    return f"quality:                       {len(breaches)} breach(es): {described} (PERSONS_MONITOR_*)"


def _figure(value: float, metric: str) -> str:
    """A rate as a percentage, anything else as a number."""
    return f"{100 * value:.2f}%" if metric.endswith("_rate") else f"{value:g}"


@contextmanager
def report_folder(final: Path) -> Iterator[Path]:
    """A folder to write the report into, moved into place as `final` once it is complete; an earlier
    run's partial folder (it was killed while writing) is removed."""
    final.parent.mkdir(parents=True, exist_ok=True)
    for leftover in final.parent.glob(".*.partial"):
        if time.time() - leftover.stat().st_mtime > PARTIAL_REPORT_AGE_S:
            shutil.rmtree(leftover, ignore_errors=True)
    building = final.parent / f".{final.name}.partial"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    try:
        yield building
        if final.exists():  # the same run reported before (a retried task): the new report replaces it
            shutil.rmtree(final)
        os.replace(building, final)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def browser_links(run: RunContext) -> Callable[[str], str]:
    """How a browser opens the run's pages from the Prefect UI: a presigned link in S3; locally the pages
    server's http address (a browser refuses file:// links from a web page), else the file."""
    if run.targets.lands_in_s3 and hasattr(run.store, "browser_link"):
        return cast(Callable[[str], str], run.store.browser_link)
    server = None
    if run.settings.pages.server:
        try:
            register_folder(run.settings.pages.server_home, run.data_dir)
            server = ensure_docs_server(run.settings.pages.server_home, run.settings.pages.server_port)
        except Exception as exc:  # the pages stay where they are; only their links are files then
            log_event(get_run_logger(), "pages_server_unavailable", error=type(exc).__name__)

    def link(location: str) -> str:
        served = server.link(Path(location)) if server is not None and location.startswith("/") else None
        return served or (Path(location).as_uri() if location.startswith("/") else location)

    return link


def _publish_artifacts(
    report: Report, docs_index: str | None, run_id: str, link: Callable[[str], str]
) -> None:
    """Report tables and the data docs link as Prefect artifacts (aggregates only)."""
    create_table_artifact(
        key="persons-report",
        table=answer_rows(report),  # in words, formatted as the report page shows them
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
    if docs_index is None:
        return
    create_markdown_artifact(
        key="persons-data-docs",
        markdown=f"# Validation data docs\n\n[Run {run_id}]({link(docs_index)})\n\n`{docs_index}`\n",
        description="Great Expectations data docs of this run",
    )
