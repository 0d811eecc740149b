"""`prefect deploy` for real, the way `make deploy`, `make worker` and `make undeploy` do it: the project's
prefect.yaml against a real Prefect server; a worker started like `make worker` serves the Faker twin that
local deployments fetch from, so an ad-hoc run and a backfill with no api_url complete offline; undeploy
removes what deploy made and nothing else."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from faker_twin import FakerTwin, TwinFaults

from deployments.alerting import deploy_automations
from deployments.prefect_api import existing_automations, project_deployments
from deployments.worker import TwinProblem, ensure_twin, twin_answers
from flows.settings import OFFLINE_DEMO_SECRET
from tests.conftest import REPO, PrefectServer, free_port, stop_process
from tests.leakscan import Needles, scan
from tests.oracle import expected_from_served

BIN = Path(sys.executable).parent
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
POOL = "persons-local"
REFERENCE_DATE = "2026-06-15"


@dataclass(frozen=True)
class Deployed:
    """What the module's one `make deploy ENV=local` made, and the environment the commands share."""

    env: dict[str, str]
    output: str
    data_dir: Path
    twin_url: str
    twin_port: int


def flow_run_state(run_id: str) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
    return state.type.value if state else "PENDING"


def wait_until_final(run_id: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = flow_run_state(run_id)
        if state in FINAL:
            return state
        time.sleep(1)
    return flow_run_state(run_id)


def wait_for(condition: Any, timeout_s: float) -> bool:
    """Poll `condition()` until it is true or the time is up; its last value."""
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    return bool(condition())


def trigger(deployment: str, env: dict[str, str], **parameters: Any) -> str:
    """`prefect deployment run` with --param options; the new flow run's id."""
    command = [str(BIN / "prefect"), "deployment", "run", deployment]
    for name, value in parameters.items():
        command += ["--param", f"{name}={value}"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=True)
    return re.search(r"UUID: ([0-9a-f-]{36})", done.stdout)[1]  # type: ignore[index]


def run_script(name: str, env: dict[str, str], *arguments: str) -> str:
    """deployments/<name>.py as its make target runs it; stdout and stderr (it must succeed)."""
    command = [str(BIN / "python"), str(REPO / "deployments" / f"{name}.py"), "--env", "local", *arguments]
    done = subprocess.run(
        command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def deployed(prefect_client: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    """`make deploy ENV=local` with the twin on a free port of 127.0.0.1 (the caller overrides local.env)."""
    folder = tmp_path_factory.mktemp("deployments")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONS_")}
    env.update(
        PREFECT_API_URL=prefect_client.api_url,
        PREFECT_HOME=str(folder / "cli-home"),
        PERSONS_DATA_DIR=str(folder / "data"),
        PERSONS_API_URL=f"http://127.0.0.1:{port}/api/v2",
        PERSONS_BACKOFF_INITIAL_S="0.01",
        PERSONS_RATE_LIMIT_PER_S="0",
    )
    output = run_script("deploy", env)
    return Deployed(env, output, folder / "data", env["PERSONS_API_URL"], port)


def test_deploy_says_what_it_made_in_a_few_lines_and_keeps_prefects_output_in_a_log(
    deployed: Deployed,
) -> None:
    lines = deployed.output.splitlines()
    assert len(lines) <= 20, deployed.output
    assert lines[0] == f"Deploying ENV=local to the Prefect API at {deployed.env['PREFECT_API_URL']}"
    assert f"  work pool {POOL} (process): created" in lines
    assert "  deployments (6 created): persons-daily/daily, persons-backfill/backfill" in deployed.output
    assert f"  runs fetch persons from the Faker twin at {deployed.twin_url}" in lines
    assert any(line.startswith("  models: built in ") for line in lines), deployed.output
    assert f"  make worker                    a process worker on {POOL} and the Faker twin" in lines
    assert "To execute flow runs from these deployments" not in deployed.output  # Prefect's hint, once each
    log = Path(lines[-1].removeprefix("Prefect's output: "))
    assert log == deployed.data_dir / "logs" / "deploy-local.log"
    assert "To execute flow runs from these deployments" in log.read_text()
    assert "Deployment 'persons-pipeline/adhoc' successfully created" in log.read_text()


def test_local_schedules_are_paused_and_runs_fetch_from_the_twin(deployed: Deployed) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

    by_name = {item.name: item for item in project_deployments(POOL)}
    for name in ("persons-daily/daily", "persons-models/build"):
        (schedule,) = by_name[name].schedules
        assert not schedule.active
        assert f"    prefect deployment schedule resume {name} {schedule.id}" in deployed.output
    with get_client(sync_client=True) as client:
        scheduled = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[by_name["persons-daily/daily"].id])
            )
        )
        adhoc = client.read_deployment(by_name["persons-pipeline/adhoc"].id)
    assert scheduled == []  # nothing will run at 06:00 until someone turns the schedule on
    assert adhoc.job_variables["env"]["PERSONS_API_URL"] == deployed.twin_url


def start_worker(env: dict[str, str], output: Path) -> subprocess.Popen[bytes]:
    """`make worker`: deployments/worker.py in its own session (stopped with its process group)."""
    with output.open("wb") as out:
        return subprocess.Popen(
            [str(BIN / "python"), str(REPO / "deployments" / "worker.py"), "--env", "local", "--limit", "4"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def served_pages(twin_url: str) -> list[dict[str, str]]:
    """The query of every page the twin served (its control endpoint)."""
    with urllib.request.urlopen(twin_url.replace("/api/v2", "/__twin/served"), timeout=10) as response:
        served: list[dict[str, str]] = json.loads(response.read())
    return served


def check_warehouse(data_dir: Path) -> None:
    """The ad-hoc run's 2,000 persons and the two backfill windows of 1,000, each window its own child run."""
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as connection:
        windows = connection.execute(
            "select window_key, run_id from landing.load_windows where status = 'completed' order by 1"
        ).fetchall()
        assert [key for key, _ in windows] == [
            "birthdays:1960-01-01..1969-12-31",
            "birthdays:1970-01-01..1979-12-31",
        ]
        for _, run_id in windows:
            assert flow_run_state(run_id) == "COMPLETED"
            assert connection.execute(
                "select count(*), count(distinct person_key) from landing.persons where run_id = ?", [run_id]
            ).fetchall() == [(1000, 1000)]
        assert connection.execute(
            "select count(*), count(distinct person_key) from staging.persons"
        ).fetchall() == [(4000, 4000)]


def test_a_worker_started_like_make_worker_runs_adhoc_and_backfill_offline_against_its_twin(
    deployed: Deployed, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    output = tmp_path / "worker.out"
    worker = start_worker(deployed.env, output)
    try:
        assert wait_for(lambda: twin_answers("127.0.0.1", deployed.twin_port), 60), output.read_text()
        adhoc = trigger("persons-pipeline/adhoc", deployed.env, total=2000, reference_date=REFERENCE_DATE)
        assert wait_until_final(adhoc, 600) == "COMPLETED", output.read_text()[-5000:]
        backfill = trigger(
            "persons-backfill/backfill",
            deployed.env,
            birthday_start="1960-01-01",
            birthday_end="1979-12-31",
            window_years=10,
            persons_per_window=1000,
            reference_date=REFERENCE_DATE,
        )
        assert wait_until_final(backfill, 600) == "COMPLETED", output.read_text()[-5000:]
        served = served_pages(deployed.twin_url)
    finally:
        stop_process(worker)
    assert wait_for(lambda: not twin_answers("127.0.0.1", deployed.twin_port), 10)  # it ended with the worker
    assert (
        output.read_text()
        .splitlines()[0]
        .startswith(f"worker: the Faker twin serves at {deployed.twin_url} until the worker stops")
    )
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[adhoc]))
        )
    assert "persons-report" in {artifact.key for artifact in artifacts}
    check_warehouse(deployed.data_dir)
    assert len({tuple(sorted(page.items())) for page in served}) == 4  # every page came from the twin
    # The outputs of deploy and worker (Prefect's log, the twin's log, the worker's lines) hold no person.
    expected = expected_from_served(served, TwinFaults(), date.fromisoformat(REFERENCE_DATE), b"unused")
    needles = Needles.from_records(expected.raw_records)
    needles.substrings.add(OFFLINE_DEMO_SECRET)
    logs = deployed.data_dir / "logs"
    assert {"deploy-local.log", "faker-twin.log"} <= {path.name for path in logs.iterdir()}
    assert scan([deployed.data_dir, output.parent], needles) == []


@pytest.fixture
def listener() -> Iterator[int]:
    """A port on 127.0.0.1 where something that is not the twin listens."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_a_serving_twin_is_reused_a_killed_workers_twin_ends_and_a_taken_port_is_named(
    tmp_path: Path, listener: int
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v2"
    killed = (
        "import os, signal, sys; from pathlib import Path; from deployments.worker import ensure_twin; "
        "print(ensure_twin(sys.argv[1], Path(sys.argv[2])), flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    )
    command = [str(BIN / "python"), "-c", killed, url, str(tmp_path / "twin.log")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -9 and f"serves at {url}" in done.stdout, done.stdout + done.stderr
    assert wait_for(lambda: not twin_answers("127.0.0.1", port), 10)  # it did not outlive its worker

    with FakerTwin(port=port):  # one left running (or another worker's, or started by hand): reused
        assert ensure_twin(url, tmp_path / "reused.log") == (
            f"the Faker twin already serving at {url} is used (it is left running)"
        )
    assert not (tmp_path / "reused.log").exists()  # nothing was started

    with pytest.raises(
        TwinProblem, match=f"no Faker twin could listen on 127.0.0.1:{listener} .*PERSONS_API_URL"
    ):
        ensure_twin(f"http://127.0.0.1:{listener}/api/v2", tmp_path / "taken.log")
    assert ensure_twin("https://fakerapi.it/api/v2", tmp_path / "public.log") is None  # not ours to start


def make_foreign_deployment() -> Any:
    """Another flow's deployment named like one of ours, in the same pool: not the project's to remove."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("someone-elses-flow")
        return client.create_deployment(flow_id, "adhoc", work_pool_name=POOL, entrypoint="theirs.py:flow")


def test_undeploy_removes_what_deploy_made_and_keeps_the_rest(deployed: Deployed) -> None:
    from prefect.blocks.webhook import Webhook
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    block = f"persons-alerts-{uuid.uuid4().hex[:8]}"
    automations = deploy_automations("http://127.0.0.1:9/", block)  # as make deploy does with a webhook
    foreign = make_foreign_deployment()

    output = run_script("undeploy", deployed.env)
    assert "  deployments deleted (6): persons-daily/daily, persons-backfill/backfill" in output
    assert f"  automations deleted (3): {', '.join(automations)}" in output
    assert f"  work pool {POOL}: kept (1 other deployment(s) use it)" in output
    assert project_deployments(POOL) == [] and existing_automations(automations) == []
    assert Webhook.load(block) is not None  # blocks are kept
    with get_client(sync_client=True) as client:
        assert client.read_deployment(foreign).name == "adhoc"
        client.delete_deployment(foreign)

    assert f"  work pool {POOL}: deleted" in run_script("undeploy", deployed.env)
    with get_client(sync_client=True) as client:  # a pool of that name made by hand is never removed
        client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
    assert f"  work pool {POOL}: kept (make deploy did not create it)" in run_script("undeploy", deployed.env)
    with get_client(sync_client=True) as client:
        client.read_work_pool(POOL)
        client.delete_work_pool(POOL)
        client.delete_block_document(Webhook.load(block)._block_document_id)  # type: ignore[arg-type]
