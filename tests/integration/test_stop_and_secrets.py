"""Stop signals and secrets, with the real console script and the local Prefect server it starts: SIGTERM ends
a run within 10 s whatever it is doing (page retries, a trickling answer, a Retry-After pause, a slot wait, a
dbt build), the run is marked Crashed, nothing is left behind and the rerun completes; no child process sees
the pipeline's secrets."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from faker_twin import FakerTwin, TwinFaults

from flows.runtime.server import read_state, stop_server
from tests.conftest import free_port
from tests.integration.test_recovery import SCRIPT, SMALL, LocalRuntime, staging
from tests.receivers import TrickleServer

STOP_WITHIN_S = 10.0
SECRETS = {
    "PERSONS_HMAC_SECRET": "hmac-" + "7f3a9c" * 8,
    "SNOWFLAKE_PASSWORD": "snow-pw-" + "41d2" * 6,
    "AWS_SECRET_ACCESS_KEY": "aws-secret-" + "9b8c" * 8,
}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    """A local Prefect server of this module's own, started by its first run (with the secrets set)."""
    home = tmp_path_factory.mktemp("stop-prefect-server")
    yield LocalRuntime(home, tmp_path_factory.mktemp("stop-prefect-client"), "")
    stop_server(home)


@pytest.fixture(scope="module")
def module_twin() -> Iterator[FakerTwin]:
    with FakerTwin() as server:
        yield server


@dataclass
class Stopped:
    """A console-script run that was sent SIGTERM: its exit, output and how long it took to end."""

    returncode: int
    output: str
    seconds_to_exit: float
    pid: int
    environments: dict[int, tuple[str, dict[str, str]]] = field(default_factory=dict)

    @property
    def flow_run_id(self) -> str:
        found = re.search(r"/runs/flow-run/([0-9a-f-]{36})", self.output)
        assert found, self.output[-3000:]
        return found.group(1)


def descendants(pid: int) -> set[int]:
    """Every process below `pid`."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
                parents[int(entry)] = int(stat[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def read_environment(pid: int) -> tuple[str, dict[str, str]] | None:
    """(command line, environment) of a live process."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return command, {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


def run_and_stop(
    runtime: LocalRuntime,
    arguments: list[str],
    stop_at: str | None,
    watch_environments: bool = False,
    timeout_s: float = 600,
    **env: str,
) -> Stopped:
    """Run `persons-pipeline run ...`; SIGTERM it at the first output line matching `stop_at` (if any) and
    measure how long it takes to exit; optionally read every descendant's environment while it runs."""
    process = subprocess.Popen(
        [str(SCRIPT), "run", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=runtime.env(**env),
    )
    environments: dict[int, tuple[str, dict[str, str]]] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            server = read_state(runtime.server_home)
            for pid in descendants(process.pid) | ({server.pid} if server else set()):
                if pid not in environments and (seen := read_environment(pid)) is not None:
                    environments[pid] = seen
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    if watch_environments:
        watcher.start()
    lines: list[str] = []
    signalled = None
    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if stop_at and signalled is None and re.search(stop_at, line):
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
        if time.monotonic() > deadline:
            process.kill()
            break
    returncode = process.wait(timeout=60)
    took = time.monotonic() - signalled if signalled is not None else 0.0
    done.set()
    return Stopped(returncode, "".join(lines), took, process.pid, environments)


def flow_run_state(runtime: LocalRuntime, flow_run_id: str) -> str:
    state = read_state(runtime.server_home)
    assert state is not None
    response = httpx.get(f"{state.api_url}/flow_runs/{flow_run_id}", timeout=30)
    response.raise_for_status()
    return str(response.json()["state"]["type"])


def assert_stopped_cleanly(runtime: LocalRuntime, stopped: Stopped) -> None:
    """Ended within 10 s of the signal, said so in one line, Crashed in Prefect, nothing left behind."""
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.output[-4000:]
    assert stopped.seconds_to_exit < STOP_WITHIN_S, (stopped.seconds_to_exit, stopped.output[-4000:])
    assert "persons-pipeline run: stopped by SIGTERM" in stopped.output
    assert not re.search(r"Retry \d+/\d+", stopped.output)  # no task was retried after the stop
    assert "event=worker_restarted" not in stopped.output
    assert flow_run_state(runtime, stopped.flow_run_id) == "CRASHED"
    assert not [name for name in os.listdir("/tmp") if name.startswith(f"persons-remote-{stopped.pid}-")]
    assert not descendants(stopped.pid)


def test_no_child_process_sees_the_pipelines_secrets(
    runtime: LocalRuntime, module_twin: FakerTwin, tmp_path: Path
) -> None:
    # The first run of the module: it starts the local server, the raw-data worker and dbt (a new folder).
    arguments = ["--api-url", module_twin.url, "--total", "2000", "--data-dir", str(tmp_path / "data")]
    run = run_and_stop(runtime, [*arguments, *SMALL], None, watch_environments=True, **SECRETS)
    assert run.returncode == 0, run.output[-4000:]
    kinds = {
        "prefect server": "prefect server start",
        "raw-data worker": "flows.rawdata.worker:RawDataWorker",
        "dbt": "flows.analytics.dbt_process",
    }
    seen = {
        kind: [env for command, env in run.environments.values() if marker in command]
        for kind, marker in kinds.items()
    }
    assert all(seen.values()), {kind: len(envs) for kind, envs in seen.items()}
    for kind, envs in seen.items():
        for env in envs:
            leaked = [name for name, value in SECRETS.items() if value in env.values() or name in env]
            assert not leaked, f"{kind} holds {leaked}"
            assert "PATH" in env  # an environment it can run in, not an empty one


@pytest.mark.parametrize("source", ["nothing listens", "a trickling answer", "Retry-After 100 s"])
def test_sigterm_ends_a_run_within_10_s_whatever_the_source_does(
    runtime: LocalRuntime, tmp_path: Path, source: str
) -> None:
    arguments = ["--total", "5000", "--data-dir", str(tmp_path / "data"), *SMALL]
    if source == "nothing listens":
        url = f"http://127.0.0.1:{free_port()}/api/v2"
        stopped = run_and_stop(runtime, ["--api-url", url, *arguments], r"event=run_planned")
    elif source == "a trickling answer":
        with TrickleServer(interval_s=0.5) as trickle:
            stopped = run_and_stop(runtime, ["--api-url", trickle.url, *arguments], r"event=run_planned")
    else:
        with FakerTwin(faults=TwinFaults(rate_limit_every=1, retry_after_s=100)) as throttled:
            stopped = run_and_stop(runtime, ["--api-url", throttled.url, *arguments], r"event=run_planned")
    assert_stopped_cleanly(runtime, stopped)


def test_sigterm_ends_a_run_waiting_for_the_slot_and_one_building_the_models(
    runtime: LocalRuntime, module_twin: FakerTwin, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    arguments = ["--total", "2000", "--data-dir", str(data_dir), *SMALL]
    with TrickleServer(interval_s=0.5) as trickle:
        holder = subprocess.Popen(  # holds the warehouse's slot while its pages trickle in
            [str(SCRIPT), "run", "--api-url", trickle.url, *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=runtime.env(),
        )
        try:
            assert holder.stdout is not None
            assert any("event=warehouse_slot " in line for line in holder.stdout)  # it holds the slot
            threading.Thread(target=holder.stdout.read, daemon=True).start()  # the rest, unread
            waiting = run_and_stop(
                runtime, ["--api-url", module_twin.url, *arguments], r"event=warehouse_slot_wait"
            )
        finally:
            holder.send_signal(signal.SIGTERM)
            assert holder.wait(timeout=STOP_WITHIN_S) == 128 + signal.SIGTERM
    assert_stopped_cleanly(runtime, waiting)
    # A first run on the folder builds the models with dbt after its last merge: stopped there.
    building = run_and_stop(
        runtime, ["--api-url", module_twin.url, *arguments], r"event=batch_merged .*b00009"
    )
    assert_stopped_cleanly(runtime, building)
    rerun = run_and_stop(runtime, ["--api-url", module_twin.url, *arguments], None)
    assert rerun.returncode == 0, rerun.output[-4000:]
    assert "event=models_built status=success" in rerun.output
    assert staging(data_dir) == (2000, 2000)


def test_a_run_stopped_while_retrying_pages_is_completed_by_the_rerun(
    runtime: LocalRuntime, module_twin: FakerTwin, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    arguments = ["--total", "1000", "--data-dir", str(data_dir), *SMALL]
    with FakerTwin(faults=TwinFaults(error_rate=1.0)) as failing:
        stopped = run_and_stop(runtime, ["--api-url", failing.url, *arguments], r"event=run_planned")
    assert_stopped_cleanly(runtime, stopped)
    rerun = run_and_stop(runtime, ["--api-url", module_twin.url, *arguments], None)
    assert rerun.returncode == 0, rerun.output[-4000:]
    assert staging(data_dir) == (1000, 1000)
