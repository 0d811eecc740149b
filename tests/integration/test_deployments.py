"""`prefect deploy` for real: the project's prefect.yaml against a real Prefect server, runs picked up by a
real process worker - an ad-hoc run with parameters, then a backfill fanned out over two windows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
from faker_twin.server import FakerTwin

from tests.conftest import REPO, PrefectServer, stop_process

BIN = Path(sys.executable).parent
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


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


def trigger(deployment: str, env: dict[str, str], **parameters: Any) -> str:
    """`prefect deployment run` with --param options; the new flow run's id."""
    command = [str(BIN / "prefect"), "deployment", "run", deployment]
    for name, value in parameters.items():
        command += ["--param", f"{name}={value}"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=True)
    return re.search(r"UUID: ([0-9a-f-]{36})", done.stdout)[1]  # type: ignore[index]


def test_deploy_then_adhoc_and_backfill_runs_through_a_worker(
    prefect_client: PrefectServer, twin: FakerTwin, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONS_")}
    env.update(
        PREFECT_API_URL=prefect_client.api_url,
        PREFECT_HOME=str(tmp_path / "cli-home"),
        PERSONS_DATA_DIR=str(data_dir),
        PERSONS_BACKOFF_INITIAL_S="0.01",
        PERSONS_RATE_LIMIT_PER_S="0",
    )
    timings: dict[str, float] = {}
    started = time.monotonic()
    subprocess.run(
        [str(BIN / "python"), str(REPO / "deployments" / "deploy.py"), "--env", "local"],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    timings["deploy (pool + prefect deploy --all)"] = time.monotonic() - started

    started = time.monotonic()
    adhoc = trigger("persons-pipeline/adhoc", env, total=2000, api_url=twin.url, reference_date="2026-06-15")
    subprocess.run(
        [
            str(BIN / "prefect"),
            "worker",
            "start",
            "--pool",
            "persons-local",
            "--type",
            "process",
            "--run-once",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    timings["ad-hoc run through a --run-once worker"] = time.monotonic() - started
    assert flow_run_state(adhoc) == "COMPLETED"
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[adhoc]))
        )
    assert "persons-report" in {artifact.key for artifact in artifacts}
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as connection:
        assert connection.execute("select count(*) from staging.persons").fetchall() == [(2000,)]

    worker = subprocess.Popen(
        [
            str(BIN / "prefect"),
            "worker",
            "start",
            "--pool",
            "persons-local",
            "--type",
            "process",
            "--limit",
            "4",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        started = time.monotonic()
        backfill = trigger(
            "persons-backfill/backfill",
            env,
            birthday_start="1960-01-01",
            birthday_end="1979-12-31",
            window_years=10,
            persons_per_window=1000,
            api_url=twin.url,
            reference_date="2026-06-15",
        )
        assert wait_until_final(backfill, 600) == "COMPLETED"
        timings["backfill of two windows (parent + 2 child runs)"] = time.monotonic() - started
    finally:
        stop_process(worker)
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as connection:
        windows = connection.execute(
            "select window_key, run_id from landing.load_windows where status = 'completed' order by 1"
        ).fetchall()
        assert [key for key, _ in windows] == [
            "birthdays:1960-01-01..1969-12-31",
            "birthdays:1970-01-01..1979-12-31",
        ]
        for _, run_id in windows:
            assert flow_run_state(run_id) == "COMPLETED"  # each window ran as its own child flow run
            assert connection.execute(
                "select count(*), count(distinct person_key) from landing.persons where run_id = ?", [run_id]
            ).fetchall() == [(1000, 1000)]
        assert connection.execute(
            "select count(*), count(distinct person_key) from staging.persons"
        ).fetchall() == [(4000, 4000)]
    print("\n".join(f"{step}: {seconds:.1f} s" for step, seconds in timings.items()))
