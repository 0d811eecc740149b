"""The models in a run: start dbt early if the models changed, build after the merges, publish the results.

A run whose models' fingerprint matches the warehouse's last successful build starts no dbt at all: the
layers are views, current as soon as staging changes. Otherwise a dbt process imports and parses while the
batches are processed, and `dbt build` (seeds, views, every test) runs once the last batch is merged, while
the run's own DuckDB connection is closed. A failed model or test fails the run, named.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.analytics.project import dbt_vars, fingerprint
from flows.analytics.results import BuildResults
from flows.analytics.runner import DbtFailed, DbtProcess
from flows.landing.files import LandingStore
from flows.settings import PipelineSettings
from flows.warehouse import Warehouse
from flows.warehouse.build_history import BuildOutcome, models_fingerprint, record_models_build

DOCS_FOLDER = "data_docs/dbt"  # under the data folder, and under the landing store's prefix in S3


@dataclass
class ModelBuild:
    """The models' state in one run: their fingerprint and, if they must be built, the dbt process."""

    fingerprint: str
    k_anonymity: int
    process: DbtProcess | None = None
    results: BuildResults | None = None
    docs: str | None = None

    @property
    def needed(self) -> bool:
        """Whether the warehouse's models differ from the project's."""
        return self.process is not None


def plan_models(
    warehouse: Warehouse, settings: PipelineSettings, data_dir: Path, run_id: str, force: bool = False
) -> ModelBuild:
    """Compare fingerprints; if the models changed, start dbt now so import and parse overlap the run."""
    current = fingerprint(warehouse.dialect, settings.models.k_anonymity)
    build = ModelBuild(current, settings.models.k_anonymity)
    if not force and models_fingerprint(warehouse) == current:
        return build
    build.process = DbtProcess(
        warehouse.dbt_target(settings.models.dbt_threads, settings.models.dbt_duckdb_memory_limit),
        work_dir=data_dir / "dbt" / "builds" / run_id,
        variables=dbt_vars(settings.models.k_anonymity),
        cache_dir=data_dir / "dbt",
    )
    build.process.start()
    return build


@contextmanager
def models_of_run(
    warehouse: Warehouse, settings: PipelineSettings, data_dir: Path, run_id: str, force: bool = False
) -> Iterator[ModelBuild]:
    """`plan_models`, with the dbt process stopped however the block ends."""
    build = plan_models(warehouse, settings, data_dir, run_id, force)
    try:
        yield build
    finally:
        if build.process is not None:
            build.process.close()


@task(
    name="build-models",
    task_run_name="build-models",  # one of its kind per run: no random suffix
    cache_policy=NO_CACHE,
    persist_result=False,
)
def build_models(
    warehouse: Warehouse, build: ModelBuild, store: LandingStore, data_dir: Path, run_id: str
) -> dict[str, Any]:
    """dbt build and docs if the models changed; results as artifacts; DbtFailed if anything failed."""
    logger = get_run_logger()
    if build.process is None:
        logger.info("event=models_current fingerprint=%s", build.fingerprint[:12])
        build.docs = dbt_docs_location(data_dir, store)  # the last build's docs: current, as the views are
        return {"built": False, "fingerprint": build.fingerprint, "docs": build.docs}
    started = time.perf_counter()
    parse = build.process.ready()  # before releasing the warehouse: parsing needs no connection
    with warehouse.released():
        reply, results = build.process.run("build")
        if reply.success:
            build.process.run("docs", "generate", "--static")
        build.process.close()
    seconds = round(time.perf_counter() - started, 3)
    build.results = results
    if results is not None:
        _publish_results(results, run_id)
    models = sum(1 for node in results.nodes if node.resource_type in {"model", "seed"}) if results else 0
    tests = sum(1 for node in results.nodes if node.resource_type == "test") if results else 0
    status = "success" if reply.success else "failed"
    outcome = BuildOutcome(build.fingerprint, build.k_anonymity, status, run_id, models, tests, seconds)
    record_models_build(warehouse, outcome)
    logger.info(
        "event=models_built status=%s models=%d tests=%d parse_s=%.3f build_s=%.3f fingerprint=%s",
        status,
        models,
        tests,
        parse.seconds,
        seconds,
        build.fingerprint[:12],
    )
    if not reply.success:
        message = results.failure_message() if results and results.failed else f"dbt build: {reply.error}"
        raise DbtFailed(f"{message}; log: {build.process.log_path}", results)
    build.docs = publish_docs(build.process.target_path, data_dir, store)
    return {"built": True, "fingerprint": build.fingerprint, "seconds": seconds, "docs": build.docs}


def publish_docs(target_path: Path, data_dir: Path, store: LandingStore) -> str | None:
    """The dbt docs (lineage from the API's source to the report) beside the GX data docs; their location."""
    page = target_path / "static_index.html"
    if not page.exists():
        return None
    folder = data_dir / DOCS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(page, folder / "index.html")
    return f"{store.upload_folder(folder, DOCS_FOLDER)}/index.html"


def dbt_docs_location(data_dir: Path, store: LandingStore) -> str | None:
    """Where the dbt docs of the warehouse's models are (the last build's page), None if never built here.

    A run that did not build them points at the same page: the models are views, so the page describes
    what the warehouse shows. In S3 it is the page the last build uploaded, else the local file.
    """
    key = f"{DOCS_FOLDER}/index.html"
    if store.exists(key):
        return store.uri(key)
    page = data_dir / key
    return str(page) if page.is_file() else None


def _publish_results(results: BuildResults, run_id: str) -> None:
    """dbt's results as Prefect artifacts: every node with status and timing, and a summary."""
    create_table_artifact(
        key="persons-dbt-results", table=results.rows(), description=f"dbt {results.command} of run {run_id}"
    )
    counts = "\n".join(f"| {name} | {count} |" for name, count in results.counts().items())
    failed = "\n".join(f"- {node.resource_type} `{node.name}` on `{node.model}`" for node in results.failed)
    create_markdown_artifact(
        key="persons-dbt-summary",
        markdown=(
            f"# dbt {results.command}: {'failed' if results.failed else 'passed'}\n\n"
            f"{results.elapsed_s:.1f} s\n\n| nodes | count |\n|---|---|\n{counts}\n\n{failed}\n"
        ),
        description="dbt build summary",
    )
