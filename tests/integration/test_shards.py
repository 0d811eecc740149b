"""Sharded runs for real: `persons-shard` flow runs on two process workers of a pool of their own, the
publisher in the test's process or as the console script, against the twin; DuckDB, and Snowflake + S3.

Every person once, whatever is killed: a shard's process, the publishing run, a worker (with the flow run it
was running). No batch is fetched again once it landed (the twin's served log after the kill holds none of
the pages whose verdicts were in the landing store at the kill)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faker_twin import FakerTwin, TwinFaults

from bench.shard_pool import register_in_subprocess, register_shard_deployment, start_worker, stop_session
from flows.run.sharding import VERDICTS
from flows.runtime.server import LEASE_STORAGE
from flows.settings import OFFLINE_DEMO_SECRET, get_settings
from tests.conftest import BIN, PrefectServer, S3Server, SnowflakeServer, free_port, wait_for_http
from tests.integration.conftest import REFERENCE_DATE, FlowRun
from tests.leakscan import Needles, scan
from tests.oracle import expected_from_served

SCRIPT = Path(sys.executable).parent / "persons-pipeline"
# 16 batches of 5 pages of 100 persons, 2 shards of 8 batches; 2 shards in flight.
SHARDED = {"total": 8000, "page_size": 100, "pages_per_batch": 5, "shards": 2, "shard_pages": 40, "seed": 5}


@dataclass
class Pool:
    """The module's work pool, its shard deployments and its two process workers."""

    name: str
    deployment: str
    wrong_key_deployment: str
    env: dict[str, str]
    logs: Path
    workers: list[subprocess.Popen[bytes]]

    def ensure_workers(self, count: int = 2) -> None:
        """Start workers until `count` are alive (a test may have killed one)."""
        self.workers = [worker for worker in self.workers if worker.poll() is None]
        while len(self.workers) < count:
            self.workers.append(
                start_worker(self.name, self.env, self.logs / f"worker-{uuid.uuid4().hex[:6]}.log")
            )


def shard_environment(api_url: str, home: Path, s3: S3Server) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PERSONS_", "PREFECT_"))}
    env.update(
        PREFECT_API_URL=api_url,
        PREFECT_HOME=str(home),
        PREFECT_LOGGING_LEVEL="WARNING",
        PERSONS_ALLOW_DEMO_SECRET="true",
        PERSONS_RATE_LIMIT_PER_S="0",
        PERSONS_BACKOFF_INITIAL_S="0.01",
        PERSONS_BACKOFF_MAX_S="0.2",
        PERSONS_SHARD_HEARTBEAT_S="2",
        PERSONS_SHARD_START_TIMEOUT_S="180",
        PERSONS_PAGES_SERVER="false",
        **s3.environment(),
    )
    return env


@pytest.fixture(scope="module")
def pool(
    prefect_client: PrefectServer, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pool]:
    logs = tmp_path_factory.mktemp("shard-workers")
    name = f"persons-shards-{uuid.uuid4().hex[:6]}"
    env = shard_environment(prefect_client.api_url, tmp_path_factory.mktemp("worker-home"), s3_server)
    deployment = register_shard_deployment(name, "shard-test")
    wrong_key = register_shard_deployment(
        name, "shard-wrong-key", {"PERSONS_HMAC_SECRET": "another-key-" + "x" * 40}
    )
    found = Pool(name, deployment, wrong_key, env, logs, [])
    found.ensure_workers()
    yield found
    for worker in found.workers:
        stop_session(worker)


@pytest.fixture
def sharded(pool: Pool, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pool]:
    """This process publishes with the pool's deployment and the tests' heartbeat."""
    pool.ensure_workers()
    monkeypatch.setenv("PERSONS_SHARD_DEPLOYMENT", pool.deployment)
    monkeypatch.setenv("PERSONS_SHARD_HEARTBEAT_S", "2")
    monkeypatch.setenv("PERSONS_SHARD_START_TIMEOUT_S", "180")
    get_settings.cache_clear()
    yield pool
    get_settings.cache_clear()


def report_of(run: FlowRun) -> dict[str, Any]:
    document = run.report
    document.pop("run")
    return document


def verdict_seeds(landing: Path) -> set[int]:
    """The _seeds of every page whose batch has a verdict in the landing folder."""
    seeds: set[int] = set()
    for path in (landing / VERDICTS).glob("*.json"):
        seeds |= {seed for _, seed, _ in json.loads(path.read_text())["pages"]}
    return seeds


def served_seeds(twin: FakerTwin, since: int = 0) -> list[int]:
    return [int(params["_seed"]) for params in twin.served()[since:]]


def published_keys(run: FlowRun) -> tuple[int, int]:
    """(rows, distinct person_keys) in staging."""
    return run.query("select count(*), count(distinct person_key) from staging.persons")[0]


def test_a_sharded_run_publishes_what_an_unsharded_run_of_the_same_pages_publishes(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun], sharded: Pool, tmp_path: Path
) -> None:
    faults = TwinFaults(bad_record_rate=0.05, extra_fields=True)
    twin.set_faults(faults)
    one = run_pipeline(twin.url, data_dir=tmp_path / "one", **{**SHARDED, "shards": 1})
    assert one.state.is_completed(), one.state.message
    twin.reset()
    with slot_holders(tmp_path / "many") as holders:
        many = run_pipeline(twin.url, data_dir=tmp_path / "many", **SHARDED)
    assert many.state.is_completed(), many.state.message
    assert report_of(many) == report_of(one)
    assert report_of(many)["accounting"]["requested"] == SHARDED["total"]
    # Both shards ran as flow runs of the deployment, and nothing was fetched twice.
    served = served_seeds(twin)
    assert len(served) == len(set(served)) == SHARDED["total"] // SHARDED["page_size"]
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    run_id = many.report["run"]["run_id"]
    with get_client(sync_client=True) as client:
        shards = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"parent:{run_id}"]))
        )
    states = sorted((flow_run.name, flow_run.state.type.value) for flow_run in shards)
    assert [state for _, state in states] == ["COMPLETED", "COMPLETED"], states
    # The warehouse slot was held by the publishing run only, all along.
    assert holders == {run_id}
    staged = published_keys(many)
    assert staged[0] == staged[1] == report_of(many)["total_persons"]
    # No raw value in anything the shards or the publisher left: landed files, verdicts, heartbeats, the
    # shards' data docs, the warehouse, the workers' logs (the same scan as the local leak test).
    served = expected_from_served(twin.served(), faults, REFERENCE_DATE, OFFLINE_DEMO_SECRET.encode())
    assert scan([tmp_path / "many", sharded.logs], Needles.from_records(served.raw_records)) == []


@contextmanager
def slot_holders(data_dir: Path) -> Iterator[set[str]]:
    """The run ids that held the warehouse's slot while the block ran (its holders record themselves)."""
    holders: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            for path in (data_dir / ".slots").rglob("*.json"):
                with suppress(OSError, ValueError):
                    holders.add(json.loads(path.read_text())["run_id"])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield holders
    finally:
        done.set()
        watcher.join()


def run_cli(env: dict[str, str], data_dir: Path, api_url: str, **params: Any) -> subprocess.Popen[str]:
    command = [str(SCRIPT), "run", "--api-url", api_url, "--data-dir", str(data_dir), "--verbose"]
    command += [
        "--reference-date",
        REFERENCE_DATE.isoformat(),
        "--report-json",
        str(data_dir / "report.json"),
    ]
    for name, value in params.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def children_of(pid: int) -> list[int]:
    with suppress(OSError):
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def shard_processes(pool: Pool) -> list[tuple[int, int]]:
    """(worker pid, flow-run process pid) of every flow run the pool's workers are running."""
    return [(worker.pid, child) for worker in pool.workers for child in children_of(worker.pid)]


def kill(victim: str, pool: Pool, publisher: subprocess.Popen[str]) -> None:
    """kill -9 of a shard's process, of the publishing run (its session), or of a worker with its flow run."""
    if victim == "publisher":
        os.killpg(publisher.pid, signal.SIGKILL)
        return
    worker, flow_run = wait_for(lambda: shard_processes(pool), 60, "a running shard")[0]
    if victim == "worker":
        os.kill(worker, signal.SIGKILL)
    with suppress(ProcessLookupError):
        os.killpg(flow_run, signal.SIGKILL)  # the flow run's session: the shard and its raw-data worker


def finish(process: subprocess.Popen[str], timeout_s: float = 600) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout_s)
    return process.returncode, output


@pytest.mark.parametrize("victim", ["shard", "publisher", "worker"])
def test_kill_9_then_the_same_command_again_publishes_every_person_once_and_fetches_nothing_landed_again(
    victim: str, sharded: Pool, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = {
        **sharded.env,
        "PERSONS_SHARD_DEPLOYMENT": sharded.deployment,
        "PREFECT_HOME": str(tmp_path / "cli-home"),
    }
    with FakerTwin(faults=TwinFaults(latency_ms=150)) as twin:
        first = run_cli(env, data_dir, twin.url, **SHARDED)
        try:
            wait_for(lambda: verdict_seeds(data_dir / "landing"), 240, "a first landed batch")
            kill(victim, sharded, first)
            landed_at_kill, served_at_kill = verdict_seeds(data_dir / "landing"), len(twin.served())
            code, output = finish(first)
            if victim != "publisher":
                assert code == 0, output[-4000:]
                assert "event=shard_ended" in output, output[-4000:]
            sharded.ensure_workers()
            again, again_output = finish(run_cli(env, data_dir, twin.url, **SHARDED))
            assert again == 0, again_output[-4000:]
        finally:
            for process in (first,):
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
        assert_every_person_once(twin, data_dir, served_at_kill, landed_at_kill)


def assert_every_person_once(
    twin: FakerTwin, data_dir: Path, served_at_kill: int, landed_at_kill: set[int]
) -> None:
    """Nothing landed at the kill was fetched again; staging holds every person once; the counts agree."""
    assert not set(served_seeds(twin, served_at_kill)) & landed_at_kill
    expected = expected_from_served(twin.served(), TwinFaults(), REFERENCE_DATE, OFFLINE_DEMO_SECRET.encode())
    report = json.loads((data_dir / "report.json").read_text())
    assert report["total_persons"] == len(expected.persons) == SHARDED["total"]
    accounting = report["accounting"]
    assert (
        accounting["requested"]
        == accounting["published"] + accounting["quarantined"] + accounting["rejected"]
    )
    run = FlowRun(None, data_dir, data_dir / "report.json")
    assert published_keys(run) == (SHARDED["total"], SHARDED["total"])


def test_kill_9_of_the_prefect_server_then_the_same_command_again_publishes_every_person_once(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """A server of the test's own (killed, then started again on its port and database), its own pool."""
    port, home = free_port(), tmp_path / "server-home"
    api_url = f"http://127.0.0.1:{port}/api"
    env = shard_environment(api_url, tmp_path / "client-home", s3_server)
    env["PERSONS_SHARD_DEPLOYMENT"] = "persons-shard/shard"
    server_env = {k: v for k, v in env.items() if not k.startswith("PREFECT_")}
    # As the local server the CLI starts (flows.runtime.server): leases on disk, so that the warehouse slot
    # outlives a server restart and expires there instead of staying taken.
    server_env |= {
        "PREFECT_HOME": str(home),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": LEASE_STORAGE,
    }
    env["PERSONS_WAREHOUSE_SLOT_TIMEOUT_S"] = "180"  # a slot that never frees fails the test, not hangs it
    command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]

    def start_server() -> subprocess.Popen[bytes]:
        with (tmp_path / "server.log").open("ab") as log:
            server = subprocess.Popen(
                command, env=server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for_http(f"{api_url}/health", 120, server)
        return server

    server = start_server()
    pool = f"persons-shards-{uuid.uuid4().hex[:6]}"
    register_in_subprocess(env, pool, "shard")
    workers = [start_worker(pool, env, tmp_path / f"worker-{number}.log") for number in range(2)]
    data_dir = tmp_path / "data"
    try:
        with FakerTwin(faults=TwinFaults(latency_ms=150)) as twin:
            first = run_cli(env, data_dir, twin.url, **SHARDED)
            wait_for(lambda: verdict_seeds(data_dir / "landing"), 240, "a first landed batch")
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
            landed_at_kill, served_at_kill = verdict_seeds(data_dir / "landing"), len(twin.served())
            try:
                finish(first, 60)  # without its API the run ends, or is ended here (a second kill, then)
            except subprocess.TimeoutExpired:
                os.killpg(first.pid, signal.SIGKILL)
                first.wait()
            server = start_server()
            workers = [
                worker if worker.poll() is None else start_worker(pool, env, tmp_path / "worker-again.log")
                for worker in workers
            ]
            again, output = finish(run_cli(env, data_dir, twin.url, **SHARDED))
            assert again == 0, output[-4000:]
            assert_every_person_once(twin, data_dir, served_at_kill, landed_at_kill)
    finally:
        for process in (*workers, server):
            stop_session(process)


def test_a_shard_that_cannot_finish_fails_the_run_naming_the_shard_and_the_reason(
    twin: FakerTwin,
    run_pipeline: Callable[..., FlowRun],
    sharded: Pool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PERSONS_SHARD_DEPLOYMENT", sharded.wrong_key_deployment)
    monkeypatch.setenv("PERSONS_SHARD_ATTEMPTS", "2")
    get_settings.cache_clear()
    run = run_pipeline(twin.url, data_dir=tmp_path / "data", **{**SHARDED, "total": 2000, "shard_pages": 20})
    assert not run.state.is_completed()
    message = run.state.message
    assert "shard 1-of-1 failed 2 time(s)" in message, message
    assert "is not the run's" in message and "fingerprints" in message, message
    assert twin.stats()["persons_requests"] == 0  # a shard with another key fetched nothing


def test_a_sharded_run_on_snowflake_and_s3_equals_the_unsharded_run(
    twin: FakerTwin,
    run_pipeline: Callable[..., FlowRun],
    sharded: Pool,
    snowflake_server: SnowflakeServer,
    s3_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = f"persons-shards-{uuid.uuid4().hex[:8]}"
    s3_server.client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    params = {**SHARDED, "total": 4000, "shard_pages": 20, "warehouse": "snowflake"}
    reports = []
    for shards, database in ((1, "PERSONS_ONE"), (2, "PERSONS_MANY")):
        suffix = uuid.uuid4().hex[:6].upper()
        for name, value in snowflake_server.environment(f"{database}_{suffix}").items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        landing = f"s3://{bucket}/{database.lower()}"
        run = run_pipeline(
            twin.url, data_dir=tmp_path / database, **{**params, "shards": shards}, landing_url=landing
        )
        assert run.state.is_completed(), run.state.message
        reports.append(report_of(run))
    assert reports[0] == reports[1]
    keys = [item["Key"] for item in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]  # type: ignore[attr-defined]
    assert any(key.startswith("persons_many/shards/verdicts/") for key in keys)
    assert not any(key.startswith("persons_one/shards/") for key in keys)
