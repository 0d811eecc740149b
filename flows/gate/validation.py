"""The validation gate: the version-controlled GX suite run on each batch, with data docs per run.

Results and docs carry counts, never values: result format SUMMARY with no partial unexpected values, and
no min/max/most-common expectations on personal columns.
"""

from __future__ import annotations

import html
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

import orjson
import pyarrow as pa

from flows.gate.docs_home import RUN_SUMMARY
from flows.gate.docs_home import write_docs_home as write_docs_home  # noqa: PLC0414 - re-exported
from flows.gate.offline_docs import make_docs_offline

SUITE_NAME = "persons_batch"
# What GX's pages call the data asset: the warehouse table the batch is read from (`batches.read_batch`).
DATA_ASSET = "landing.persons"
# GX's own switches (usage statistics off), all a gate in a process of its own needs of our environment.
GX_SWITCHES = ("GX_ANALYTICS_ENABLED",)
SITE_NAME = "persons_pipeline"
RESULT_FORMAT: dict[str, Any] = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}

# GX phones home and draws progress bars unless told not to; neither belongs in a pipeline's output.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


class BatchRejected(RuntimeError):
    """A batch failed the gate; the message lists expectation names and counts, never values."""

    def __init__(self, batch_id: str, failed: list[str], statistics: dict[str, Any], docs: str) -> None:
        self.batch_id = batch_id
        self.failed = failed
        self.statistics = statistics
        self.docs = docs
        super().__init__(
            f"batch {batch_id} failed {len(failed)} of {statistics.get('evaluated_expectations', '?')} "
            f"expectations: {', '.join(failed)}; data docs: {docs}"
        )


@dataclass(frozen=True)
class GateResult:
    """The verdict on one batch."""

    batch_id: str
    success: bool
    failed: list[str]
    statistics: dict[str, Any]
    docs_page: str
    unexpected_counts: dict[str, int] = field(default_factory=dict)
    # Every expectation's (name, passed, unexpected rows), for the monitoring history (flows.monitoring).
    outcomes: tuple[tuple[str, bool, int], ...] = ()


def expectations_root() -> Path:
    """The project's `expectations/` folder (PERSONS_EXPECTATIONS_DIR overrides)."""
    configured = os.environ.get("PERSONS_EXPECTATIONS_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "expectations"


@cache
def load_suite_definition(name: str = SUITE_NAME) -> dict[str, Any]:
    """The suite as stored in `expectations/<name>.json`."""
    definition: dict[str, Any] = json.loads(
        (expectations_root() / f"{name}.json").read_text(encoding="utf-8")
    )
    return definition


def expectation_label(config: Any) -> str:
    """The human name of an expectation (its meta name, else type and column)."""
    name = (config.meta or {}).get("name")
    if name:
        return str(name)
    column = config.kwargs.get("column")
    return f"{config.type}({column})" if column else str(config.type)


def expectation_description(item: dict[str, Any]) -> str | None:
    """What GX's pages show for an expectation of the suite file: the name the CLI prints, then its note.

    GX renders a description instead of its own template (which shows a raw regex), as HTML and as a
    template (`$` escaped). None without a name (GX's own text then).
    """
    meta = item.get("meta") or {}
    if not meta.get("name"):
        return None
    notes = (meta.get("notes") or {}).get("content") or []
    text = f"{meta['name']}: {' '.join(notes)}" if notes else str(meta["name"])
    return html.escape(text, quote=False).replace("$", "$$")  # GX puts it into the page as it is


class ValidationGate:
    """One GX ephemeral context per run, used by one thread at a time; docs under <docs_root>/<run_id>/."""

    def __init__(self, docs_root: Path, run_id: str) -> None:
        import great_expectations as gx  # noqa: PLC0415 - 2.5 s import, only where validation happens
        from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: PLC0415
        from great_expectations.expectations.expectation_configuration import (  # noqa: PLC0415
            ExpectationConfiguration,
        )

        self._gx = gx
        self._lock = threading.Lock()
        self.run_id = run_id
        self.validated: list[dict[str, Any]] = []  # per batch: verdict, failed names, page (the docs index)
        self.docs_dir = (docs_root / run_id).resolve()
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        self.context.add_data_docs_site(
            site_name=SITE_NAME,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(self.docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        definition = load_suite_definition()
        suite = gx.ExpectationSuite(
            name=definition["name"],
            meta=definition.get("meta", {}),
            expectations=[
                ExpectationConfiguration(
                    type=item["type"],
                    kwargs=item["kwargs"],
                    meta=item.get("meta"),
                    description=expectation_description(item),
                ).to_domain_obj()
                for item in definition["expectations"]
            ],
        )
        self.suite = self.context.suites.add_or_update(suite)
        asset = self.context.data_sources.add_pandas("landing").add_dataframe_asset("persons_batch")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("whole_batch")
        validation = self.context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name="persons_batch_gate", data=self.batch_definition, suite=self.suite)
        )
        self.checkpoint = self.context.checkpoints.add_or_update(
            gx.Checkpoint(
                name="persons_batch_checkpoint",
                validation_definitions=[validation],
                actions=[],  # docs are built once per run: rebuilding them per batch grows quadratically
                result_format=RESULT_FORMAT,
            )
        )

    def resources(self) -> dict[str, float]:
        """CPU seconds and peak RSS of the process the gate runs in."""
        from flows.runtime.remote import own_resources  # noqa: PLC0415

        return own_resources()

    def build_docs(self) -> Path:
        """Render the run's data docs (an index, one page per validated batch; offline) and its summary for
        the index of all runs; return the index. A run that validated nothing gets no site."""
        with self._lock:
            if not self.validated:
                return self.index_path
            self.context.build_data_docs(site_names=[SITE_NAME])
            offline = make_docs_offline(self.docs_dir)  # GX's pages load CDN assets: vendored copies instead
            summary = {"run_id": self.run_id, "data_asset": DATA_ASSET, "batches": self.validated}
            (self.docs_dir / RUN_SUMMARY).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
        for url in offline.dropped:
            _run_logger().warning("event=docs_asset_not_vendored run_id=%s url=%s", self.run_id, url)
        return self.index_path

    @property
    def index_path(self) -> Path:
        """The run's data docs index."""
        return self.docs_dir / "index.html"

    def close(self) -> None:
        """Nothing to stop: the gate lives in the calling process."""

    def validate(self, batch: pa.Table, batch_id: str, expected_rows: int) -> GateResult:
        """Run the suite on a batch (as pandas backed by Arrow: regexes run in RE2, not per row in Python)."""
        import pandas as pd  # noqa: PLC0415 - imported with GX, only where validation happens
        from great_expectations.core.run_identifier import RunIdentifier  # noqa: PLC0415

        text = pd.StringDtype("pyarrow")
        frame = batch.to_pandas(
            types_mapper={pa.string(): text, pa.large_string(): text}.get, date_as_object=False
        )

        with self._lock:
            result = self.checkpoint.run(
                batch_parameters={"dataframe": frame},
                expectation_parameters={"expected_rows": expected_rows},
                run_id=RunIdentifier(run_name=f"{self.run_id}-{batch_id}"),
            )
            (identifier, validation) = next(iter(result.run_results.items()))
            failed = [
                expectation_label(item.expectation_config) for item in validation.results if not item.success
            ]
            unexpected = {
                expectation_label(item.expectation_config): int(item.result.get("unexpected_count") or 0)
                for item in validation.results
                if not item.success
            }
            outcomes = tuple(
                (
                    expectation_label(item.expectation_config),
                    bool(item.success),
                    int(item.result.get("unexpected_count") or 0),
                )
                for item in validation.results
            )
            urls = self.context.get_docs_sites_urls(resource_identifier=identifier, site_names=[SITE_NAME])
            self._name_data_asset(identifier, validation, batch_id)
            self.validated.append(self._summary(identifier, validation, batch_id, failed))
        page = urls[0]["site_url"] if urls and urls[0].get("site_url") else self.index_path.as_uri()
        statistics = dict(validation.statistics)
        return GateResult(
            batch_id, bool(validation.success), failed, statistics, str(page), unexpected, outcomes
        )

    def _name_data_asset(self, identifier: Any, validation: Any, batch_id: str) -> None:
        """Name the data asset on the batch's page (a dataframe batch has none: GX would show `None`)."""
        validation.meta.setdefault("batch_spec", {})["data_asset_name"] = f"{DATA_ASSET}, batch {batch_id}"
        self.context.validation_results_store.set(identifier, validation)

    def _summary(self, identifier: Any, validation: Any, batch_id: str, failed: list[str]) -> dict[str, Any]:
        """One batch's line of the run's summary: verdict, counts and names only, its page in the site."""
        urls = self.context.get_docs_sites_urls(
            resource_identifier=identifier, site_names=[SITE_NAME], only_if_exists=False
        )
        url = urls[0].get("site_url") if urls else None
        page = Path(unquote(urlparse(url).path)) if url else None
        return {
            "batch_id": batch_id,
            "validated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "passed": bool(validation.success),
            "evaluated": int(validation.statistics.get("evaluated_expectations") or 0),
            "failed": failed,
            "page": page.relative_to(self.docs_dir).as_posix() if page else None,
        }


def _run_logger() -> Any:
    """The Prefect run logger where there is a run, else this module's logger."""
    try:
        from prefect import get_run_logger  # noqa: PLC0415 - only in the orchestrator

        return get_run_logger()
    except Exception:
        return logging.getLogger(__name__)


class InlineValidationGate(ValidationGate):
    """The gate in the orchestrating process: one interpreter fewer, and no batch copied between processes.

    GX is imported in a background thread while the first batch is extracted; its validation work shares
    the orchestrator's core with Prefect's bookkeeping and the warehouse (which runs outside the GIL).
    """

    def resources(self) -> dict[str, float]:
        """Nothing of its own: its CPU and memory are the orchestrator's."""
        return {}


class Gate(Protocol):
    """What a run needs of its validation gate, wherever it runs."""

    @property
    def docs_dir(self) -> Path:
        """The run's data docs folder."""
        ...

    @property
    def index_path(self) -> Path:
        """The run's data docs index."""
        ...

    def validate(self, batch: pa.Table, batch_id: str, expected_rows: int) -> GateResult:
        """The verdict on one batch."""
        ...

    def build_docs(self) -> Path:
        """Render the run's data docs; return the index."""
        ...

    def resources(self) -> dict[str, float]:
        """CPU seconds and peak RSS of a process of its own (empty when it has none)."""
        ...

    def close(self) -> None:
        """Stop whatever the gate started."""
        ...


def open_gate(docs_root: Path, run_id: str, separate_process: bool = False) -> Gate:
    """The run's gate: in this process (the default: leaner and faster) or in a process of its own."""
    if separate_process:
        return RemoteValidationGate(docs_root, run_id)
    return InlineValidationGate(docs_root, run_id)


class RemoteValidationGate:
    """A ValidationGate in a process of its own (`flows.runtime.remote`).

    GX's import (seconds), memory and threads stay out of the orchestrator, and validation runs
    on another core than loading and merging. A gate process that dies is started again (like the raw-data
    worker) and the call repeated; the data docs then cover the batches validated after the restart.
    """

    MAX_RESTARTS = 3

    def __init__(self, docs_root: Path, run_id: str) -> None:
        self.docs_root, self.run_id = docs_root, run_id
        self.docs_dir = (docs_root / run_id).resolve()
        self.index_path = self.docs_dir / "index.html"
        self.restarts = 0
        self._start("start")

    def _start(self, during: str) -> None:
        """Start the gate's process and create the gate there (GX is imported there, now)."""
        from flows.runtime.remote import RemoteObject, RemoteProcessError  # noqa: PLC0415

        while True:
            self._remote = RemoteObject("flows.gate.validation:ValidationGate", keep_env=GX_SWITCHES)
            try:
                self._gate = self._remote.create(self.docs_root, self.run_id)
                return
            except RemoteProcessError:
                self._restarted(during)

    def _restarted(self, during: str) -> None:
        """Count a restart of the gate's process; give up after MAX_RESTARTS."""
        from flows.runtime.remote import RemoteProcessError  # noqa: PLC0415
        from flows.runtime.stopping import stop_requested  # noqa: PLC0415

        if stop_requested():  # a stop signal ended it: it is not started again
            raise RemoteProcessError("the validation gate stopped: the run is stopping")
        if self.restarts >= self.MAX_RESTARTS:
            raise RemoteProcessError(f"the validation gate stopped {self.restarts + 1} times in this run")
        self.restarts += 1
        _run_logger().warning(
            "event=gate_restarted run_id=%s during=%s restarts=%d", self.run_id, during, self.restarts
        )

    def _call(self, method: str, *args: Any) -> Any:
        from flows.runtime.remote import RemoteProcessError  # noqa: PLC0415

        while True:
            try:
                return self._remote.call(self._gate, method, *args)
            except RemoteProcessError:
                self._restarted(method)
                self._start(method)

    def validate(self, batch: pa.Table, batch_id: str, expected_rows: int) -> GateResult:
        """ValidationGate.validate, in the gate's process."""
        result: GateResult = self._call("validate", batch, batch_id, expected_rows)
        return result

    def build_docs(self) -> Path:
        """ValidationGate.build_docs, in the gate's process."""
        self._call("build_docs")
        return self.index_path

    def resources(self) -> dict[str, float]:
        """The gate process's CPU seconds and peak RSS."""
        usage: dict[str, float] = self._call("resources")
        return usage

    def pid(self) -> int | None:
        """The gate process's id (for operators and tests)."""
        return self._remote.pid

    def close(self) -> None:
        """Stop the gate's process."""
        self._remote.close()
