"""Shared fixtures: real local servers (Prefect, the Faker twin) started and stopped by the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# The tests key their offline data with the demo key, asked for explicitly as the quickstart does.
os.environ.setdefault("PERSONS_ALLOW_DEMO_SECRET", "true")
# No background pages server per test run (tests that follow links start one of their own, then stop it).
os.environ.setdefault("PERSONS_PAGES_SERVER", "false")

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The files that take minutes, longest first: `make test` hands whole files to its two workers in collection
# order, and one of these started last would leave a worker running it alone at the end.
LONGEST_FIRST = tuple(  # measured with `make test ARGS=--durations=0`, longest first
    f"integration/{name}.py"
    for name in (
        "test_shards",
        "test_recovery",
        "test_stop_and_secrets",
        "test_pipeline_flow",
        "test_defensible_numbers",
        "test_deployments",
        "test_operations",
        "test_dbt_models",
        "test_faces",
        "test_production_targets",
        "test_image",
    )
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first; every other test keeps its place (a stable sort)."""
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(f"{item.path.parent.name}/{item.path.name}", len(LONGEST_FIRST)))


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_http(url: str, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll until `url` answers 200 (fail early if the process died)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not come up within {timeout_s} s")


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 15) -> None:
    """SIGTERM the process group, then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout_s)


@contextmanager
def running(
    command: list[str], log_path: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process in its own session (so its children stop with it), logging to `log_path`."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            stop_process(process)


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    """Poll until something listens on 127.0.0.1:`port` (fail early if the process died)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process for port {port} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port} after {timeout_s} s")


@dataclass(frozen=True)
class PrefectServer:
    """A running `prefect server start` and the homes of server and clients."""

    api_url: str
    server_home: Path
    client_home: Path


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real Prefect server on 127.0.0.1 with its own PREFECT_HOME; clients get another home."""
    server_home = tmp_path_factory.mktemp("prefect-server-home")
    client_home = tmp_path_factory.mktemp("prefect-client-home")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(server_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_UI_API_URL=f"http://127.0.0.1:{port}/api",  # the UI's API (Prefect assumes port 4200)
    )
    command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with running(command, server_home / "server.log", env) as process:
        api_url = f"http://127.0.0.1:{port}/api"
        wait_for_http(f"{api_url}/health", 90, process)
        yield PrefectServer(api_url, server_home, client_home)


@pytest.fixture(scope="session")
def prefect_client(prefect_server: PrefectServer) -> Iterator[PrefectServer]:
    """Point this process (and subprocesses through os.environ) at the session's Prefect server."""
    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    previous = {name: os.environ.get(name) for name in ("PREFECT_API_URL", "PREFECT_HOME")}
    os.environ["PREFECT_API_URL"] = prefect_server.api_url
    os.environ["PREFECT_HOME"] = str(prefect_server.client_home)
    # Threads without a settings context of their own read Prefect's global one, built when Prefect was first
    # imported (no API URL then) and so asking for a temporary server: one, started from a test process, was
    # once found still running after the tests.
    refresh_global_settings_context()
    with temporary_settings(
        updates={PREFECT_API_URL: prefect_server.api_url, PREFECT_HOME: prefect_server.client_home}
    ):
        yield prefect_server
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        # Deliver buffered logs and events while the server is still up.
        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    refresh_global_settings_context()


@pytest.fixture
def fast_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Short backoffs and no client-side rate limit, so fault tests finish quickly; settings re-read."""
    from flows.settings import get_settings

    monkeypatch.setenv("PERSONS_BACKOFF_INITIAL_S", "0.01")
    monkeypatch.setenv("PERSONS_BACKOFF_MAX_S", "0.2")
    monkeypatch.setenv("PERSONS_RATE_LIMIT_PER_S", "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def twin() -> Iterator[object]:
    """A fresh Faker API twin on 127.0.0.1 (no faults)."""
    from faker_twin import FakerTwin

    with FakerTwin() as server:
        yield server


@dataclass(frozen=True)
class SnowflakeServer:
    """A fakesnow server: Snowflake's wire protocol, served by DuckDB, in its own process."""

    host: str
    port: int

    def environment(self, database: str) -> dict[str, str]:
        """The standard SNOWFLAKE_* variables that point the real connector at it."""
        return {
            "SNOWFLAKE_ACCOUNT": "fakesnow",
            "SNOWFLAKE_USER": "fake",
            "SNOWFLAKE_PASSWORD": "snow",
            "SNOWFLAKE_WAREHOUSE": "PERSONS_WH",
            "SNOWFLAKE_DATABASE": database,
            "SNOWFLAKE_HOST": self.host,
            "SNOWFLAKE_PORT": str(self.port),
            "SNOWFLAKE_PROTOCOL": "http",
            "PERSONS_SNOWFLAKE_CREATE_DATABASE": "true",
        }


@pytest.fixture(scope="session")
def snowflake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnowflakeServer]:
    """`fakesnow -s` on 127.0.0.1, started for the session and stopped after it."""
    port = free_port()
    command = [str(BIN / "fakesnow"), "-s", "--host", "127.0.0.1", "-p", str(port)]
    with running(command, tmp_path_factory.mktemp("fakesnow") / "server.log") as process:
        wait_for_port(port, 60, process)
        yield SnowflakeServer("127.0.0.1", port)


@dataclass(frozen=True)
class S3Server:
    """A moto S3 server in its own process."""

    endpoint_url: str

    def environment(self) -> dict[str, str]:
        """The standard AWS variables that point boto3 (and prefect-aws) at it."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> object:
        """A boto3 S3 client on the server."""
        import boto3

        env = self.environment()
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """`moto_server` on 127.0.0.1, started for the session and stopped after it."""
    port = free_port()
    command = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with running(command, tmp_path_factory.mktemp("moto") / "server.log") as process:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/moto-api/", 60, process)
        yield S3Server(url)


@pytest.fixture(scope="session")
def infra_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both stacks, synthesized once per session by the app itself (cdk-nag included), as make infra."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from deployments.infra.app import synth
    from deployments.infra.config import ENVIRONMENTS

    out = tmp_path_factory.mktemp("infra-out")
    for env in ENVIRONMENTS:
        _, errors = synth(env, out)
        assert errors == [], errors  # cdk-nag and CDK found nothing unacknowledged
    return out
