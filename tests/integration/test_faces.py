"""What a person touches: the terminal (progress, one line per batch, no traceback for a refusal, JSON logs),
the run form's parameters and the API's check of them, runs told apart by tags and task names, and the
commands that say what the warehouse holds (status, history)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faker_twin import FakerTwin, TwinFaults

from tests.browser import colours, dump_dom_url, screenshot_url
from tests.conftest import PrefectServer
from tests.integration.conftest import REFERENCE_DATE

SCRIPT = Path(sys.executable).parent / "persons-pipeline"
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def cli_in_terminal(arguments: list[str], columns: int = 140, timeout_s: float = 600) -> str:
    """The console script in a pseudo-terminal (as a person runs it): all it showed, escapes removed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen([str(SCRIPT), *arguments], stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert process.wait(timeout=60) == 0, b"".join(chunks).decode(errors="replace")[-4000:]
    return ANSI.sub("", b"".join(chunks).decode(errors="replace")).replace("\r\n", "\n")


def cli(arguments: list[str]) -> subprocess.CompletedProcess[str]:
    """The console script with its output captured (not a terminal)."""
    return subprocess.run([str(SCRIPT), *arguments], capture_output=True, text=True, timeout=600, check=False)


def run_arguments(twin_url: str, data_dir: Path, *extra: str) -> list[str]:
    return [
        "run", "--api-url", twin_url, "--data-dir", str(data_dir), "--reference-date", str(REFERENCE_DATE),
        "--total", "4000", "--page-size", "500", "--pages-per-batch", "2", *extra,
    ]  # fmt: skip


@dataclass(frozen=True)
class TerminalRun:
    """One run of the console script in a pseudo-terminal, shared by the tests that read what it left."""

    twin_url: str
    data_dir: Path
    shown: str


@pytest.fixture(scope="module")
def terminal_run(
    prefect_client: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TerminalRun]:
    """4,000 persons in 4 batches, run as a person runs it (a terminal, the default log format)."""
    data_dir = tmp_path_factory.mktemp("faces") / "data"
    with pytest.MonkeyPatch.context() as patch, FakerTwin() as twin:
        patch.setenv("PERSONS_RATE_LIMIT_PER_S", "0")
        yield TerminalRun(twin.url, data_dir, cli_in_terminal(run_arguments(twin.url, data_dir)))


def test_a_terminal_shows_progress_and_one_line_per_batch_and_the_report_last(
    terminal_run: TerminalRun,
) -> None:
    shown = terminal_run.shown
    lines = [line.strip() for line in shown.replace("\r", "\n").split("\n") if line.strip()]
    assert any(re.search(r"batches .*━.* \d/4 .*persons", line) for line in lines)  # the live display
    logged = [line for line in lines if not line.startswith("batches ")]
    for number in range(1, 5):
        about = [line for line in logged if f"batch {number} of 4" in line]
        assert len(about) == 1 and "merged: 1,000 persons" in about[0], about
    assert not [line for line in logged if "Task run" in line or "Traceback" in line or "event=" in line]
    assert len(logged) <= 25, "\n".join(logged)
    assert logged[-1].startswith("report page: "), logged[-3:]
    assert "Prefect collects anonymous usage data" not in shown


def test_a_rejected_batch_is_one_verdict_without_a_traceback(tmp_path: Path) -> None:
    with FakerTwin(
        faults=TwinFaults(pii_country_rate=0.01)
    ) as shifted:  # emails in country: the gate says no
        done = cli(run_arguments(shifted.url, tmp_path / "data"))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    rejected = [line for line in done.stderr.splitlines() if re.match(r"\S+ batch \d of 4 rejected by", line)]
    assert len(rejected) == 4 and "failed country_looks_like_a_name" in rejected[0], done.stderr[-3000:]
    assert (
        done.stderr.strip().splitlines()[-1].startswith("persons-pipeline run: failed: 4 batch(es) were not")
    )


def test_runs_are_tagged_and_their_task_runs_say_the_batch(terminal_run: TerminalRun) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterTags

    data_dir_tag = f"data-dir:{terminal_run.data_dir.resolve()}"
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[data_dir_tag]))
        )
        first = min(runs, key=lambda run: str(run.created))
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[first.id])))
    assert {"env:local", "warehouse:duckdb", data_dir_tag} <= set(first.tags)
    names = {task.name for task in tasks}
    for stage in (
        "extract-pages",
        "anonymise-batch",
        "land-batch",
        "load-batch",
        "validate-batch",
        "merge-batch",
    ):
        assert {f"{stage}-{number}-of-4" for number in range(1, 5)} <= names, sorted(names)
    assert {"migrate-warehouse", "build-report", "build-models"} <= names


def test_status_and_history_tell_what_the_warehouse_publishes(
    terminal_run: TerminalRun, tmp_path: Path
) -> None:
    data_dir = terminal_run.data_dir
    status = cli(["status", "--data-dir", str(data_dir)])
    assert status.returncode == 0, status.stderr
    assert "4,000 persons published" in status.stdout and "reference date 2026-06-15" in status.stdout
    assert re.search(r"published\s+4/4\s+4,000", status.stdout)
    document = json.loads(cli(["status", "--data-dir", str(data_dir), "--json"]).stdout)
    assert document["persons"] == 4000 and document["fresh"] is True and document["open_quarantine"] == 0
    assert document["runs"][0]["verdict"] == "published" and document["runs"][0]["persons"] == 4000
    history = json.loads(cli(["history", "--data-dir", str(data_dir), "-n", "5", "--json"]).stdout)
    assert [run["merged_batches"] for run in history][-1] == 4
    missing = cli(["status", "--data-dir", str(tmp_path / "nothing-here")])
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no warehouse" in missing.stderr


def test_a_run_with_nothing_new_says_so_and_how_to_ask_for_more_and_json_logs_are_json(
    terminal_run: TerminalRun,
) -> None:
    again = cli(run_arguments(terminal_run.twin_url, terminal_run.data_dir, "--log-format", "json"))
    assert again.returncode == 0, again.stderr[-3000:]
    documents = [json.loads(line) for line in again.stderr.splitlines() if line.startswith("{")]
    assert documents and all(
        {"time", "level", "logger", "message"} <= set(document) for document in documents
    )
    assert {"run_planned", "nothing_to_fetch", "run_finished"} <= {
        document.get("event") for document in documents
    }
    said = "nothing new to fetch: all 8 pages of this run were published before"
    told = next((line for line in again.stderr.splitlines() if said in line), "")  # the final state's message
    assert "a larger total" in told and "another seed" in told, again.stderr[-3000:]


def test_the_run_form_shows_every_parameter_and_the_api_refuses_a_bad_one(
    prefect_client: PrefectServer, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    from flows.parameters import RunParameters
    from flows.run.pipeline import persons_pipeline

    deployment_id = persons_pipeline.to_deployment(name="form-test", enforce_parameter_schema=True).apply()
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(deployment_id)
        properties: dict[str, Any] = deployment.parameter_openapi_schema["properties"]
        for name, declared in RunParameters.model_fields.items():
            assert properties[name]["description"].startswith(declared.description or "-")
            assert "default" in properties[name]
        assert (properties["total"]["minimum"], properties["total"]["default"]) == (1, 30_000)
        with pytest.raises(PrefectHTTPStatusError, match=r"total.*-5 is less than the minimum of 1"):
            client.create_flow_run_from_deployment(deployment_id, parameters={"total": -5})
    form = f"{prefect_client.api_url.removesuffix('/api')}/deployments/deployment/{deployment_id}/run"
    dom = dump_dom_url(form, budget_ms=15000)
    for text in ("persons to extract in one run", "persons per API request", "Faker locale", "re-key"):
        assert text in dom, text
    picture = screenshot_url(form, tmp_path, size=(1400, 2400), budget_ms=15000)
    assert colours(picture) > 50


def test_the_artifacts_carry_the_answers_and_links_that_open_over_http(
    twin: FakerTwin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_pipeline: Any
) -> None:
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.runtime.docs_server import stop_docs_server
    from flows.settings import get_settings

    home = tmp_path / "pages-server"
    monkeypatch.setenv("PERSONS_PAGES_SERVER", "true")
    monkeypatch.setenv("PERSONS_PAGES_SERVER_HOME", str(home))
    monkeypatch.setenv("PERSONS_PAGES_SERVER_PORT", "0")
    get_settings.cache_clear()
    try:
        run = run_pipeline(twin.url, total=2000)
        assert run.state.is_completed(), run.state.message
        with get_client(sync_client=True) as client:
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[run.state.state_details.flow_run_id])
                )
            )
        by_key = {artifact.key: str(artifact.data) for artifact in artifacts}
        page = by_key["persons-report-page"]
        assert "| Persons published | 2,000 |" in page  # the answer, without opening anything
        links = re.findall(r"\((http://127\.0\.0\.1:\d+/[^)]+)\)", page + by_key["persons-data-docs"])
        assert any(link.endswith("/report.html") for link in links) and len(links) >= 5
        for link in links:
            assert httpx.get(link, timeout=10).status_code == 200, link
        report_page = next(link for link in links if link.endswith("/report.html"))
        assert "Gmail" in dump_dom_url(report_page)
        base = report_page.split("/reports/")[0]
        assert httpx.get(f"{base}/warehouse.duckdb", timeout=10).status_code == 404  # only pages are served
        assert httpx.get(f"{base}/reports/", timeout=10).status_code in {404}  # no listing
    finally:
        stop_docs_server(home)
        get_settings.cache_clear()
