"""A run path to trust on a busy machine: the local Prefect server under CPU load, `kill -9` of each process
of a run followed by a rerun, the gate restarted, a full disk. Every run here is the real console script
against the twin, using the local Prefect server it starts on demand (no PREFECT_API_URL)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import httpx
import pytest
from faker_twin import FakerTwin, TwinFaults

from flows.runtime.server import read_state, stop_server
from flows.settings import OFFLINE_DEMO_SECRET
from tests.integration.conftest import REFERENCE_DATE
from tests.leakscan import Needles, scan
from tests.oracle import expected_from_served

SCRIPT = Path(sys.executable).parent / "persons-pipeline"
# --verbose: these tests read the run's event lines (event=...) and Prefect's task lines from its output.
SMALL = ["--page-size", "100", "--pages-per-batch", "2", "--reference-date", "2026-06-15", "--verbose"]
RUN_TIMEOUT_S = 600


@dataclass
class LocalRuntime:
    """The environment of runs that use the local Prefect server (started by the first run)."""

    server_home: Path
    client_home: Path
    api_url: str

    def env(self, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
        env.update(
            PREFECT_HOME=str(self.client_home),
            PERSONS_PREFECT_SERVER_HOME=str(self.server_home),
            PERSONS_PREFECT_SERVER_PORT="0",
            **extra,
        )
        return env


@dataclass
class CliRun:
    """A finished console-script run: exit code, merged output, what was killed."""

    returncode: int
    output: str
    killed: list[int] = field(default_factory=list)
    pid: int = 0

    def events(self, name: str) -> list[str]:
        return [line for line in self.output.splitlines() if f"event={name} " in line]

    @property
    def slot_name(self) -> str:
        found = re.search(r"event=warehouse_slot name=(\S+)", self.output)
        assert found, self.output[-3000:]
        return found.group(1)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    home = tmp_path_factory.mktemp("local-prefect-server")
    yield LocalRuntime(home, tmp_path_factory.mktemp("prefect-client"), "")
    stop_server(home)


@pytest.fixture(scope="module")
def module_twin() -> Iterator[FakerTwin]:
    with FakerTwin() as server:
        yield server


@pytest.fixture
def twin_url(module_twin: FakerTwin) -> str:
    return str(module_twin.url)


def children_of(pid: int) -> dict[int, str]:
    """Child processes of `pid` and their command lines."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            parent = int(Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[1])
            if parent == pid:
                found[int(entry)] = Path(f"/proc/{entry}/cmdline").read_text().replace("\0", " ")
        except (OSError, IndexError, ValueError):
            continue
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    return state != "Z"


def run_cli(
    runtime: LocalRuntime,
    arguments: list[str],
    kill: tuple[str, Callable[[int], int]] | None = None,
    **env: str,
) -> CliRun:
    """Run `persons-pipeline run ...`; with `kill=(pattern, target)` SIGKILL target(pid) at the first line
    matching pattern."""
    process = subprocess.Popen(
        [str(SCRIPT), "run", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=runtime.env(**env),
    )
    lines, killed = [], []
    deadline = time.monotonic() + RUN_TIMEOUT_S
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if kill and not killed and re.search(kill[0], line):
            victim = kill[1](process.pid)
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
        if time.monotonic() > deadline:
            process.kill()
            break
    returncode = process.wait(timeout=60)
    return CliRun(returncode, "".join(lines), killed, process.pid)


def the_orchestrator(pid: int) -> int:
    return pid


def served(kind: str) -> Callable[[int], int]:
    def find(pid: int) -> int:
        for _ in range(100):
            match = [child for child, command in children_of(pid).items() if kind in command]
            if match:
                return match[0]
            time.sleep(0.05)
        raise AssertionError(f"no {kind} process under {pid}")

    return find


def the_server(runtime: LocalRuntime) -> Callable[[int], int]:
    def find(_: int) -> int:
        state = read_state(runtime.server_home)
        assert state is not None
        return state.pid

    return find


def staging(data_dir: Path) -> tuple[int, int]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as connection:
        rows, keys = connection.execute(
            "select count(*), count(distinct person_key) from staging.persons"
        ).fetchone()  # type: ignore[misc]
    return int(rows), int(keys)


def batch_statuses(data_dir: Path) -> dict[str, int]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as connection:
        return dict(
            connection.execute("select status, count(*) from landing.batches group by all").fetchall()
        )


def active_slots(runtime: LocalRuntime, name: str) -> int:
    state = read_state(runtime.server_home)
    assert state is not None
    response = httpx.get(f"{state.api_url}/v2/concurrency_limits/{name}", timeout=30)
    response.raise_for_status()
    return int(response.json()["active_slots"])


def assert_recovered(
    runtime: LocalRuntime, rerun: CliRun, data_dir: Path, persons: int, dead: list[int]
) -> None:
    """The rerun completed, every person is in staging once, no slot, process or socket folder is left."""
    assert rerun.returncode == 0, rerun.output[-4000:]
    assert staging(data_dir) == (persons, persons)
    assert active_slots(runtime, rerun.slot_name) == 0
    for pid in dead:
        assert not [name for name in os.listdir("/tmp") if name.startswith(f"persons-remote-{pid}-")]
        assert not children_of(pid)


class CpuHogs:
    """Processes that keep every core busy."""

    def __enter__(self) -> CpuHogs:
        self.processes = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)
        ]
        return self

    def __exit__(self, *exc_info: object) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


def test_a_run_completes_while_every_core_is_busy(
    runtime: LocalRuntime, twin_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    with CpuHogs():  # the local Prefect server starts under this load too (a fresh server home)
        run = run_cli(
            runtime, ["--api-url", twin_url, "--total", "2000", "--data-dir", str(data_dir), *SMALL]
        )
    assert run.returncode == 0, run.output[-4000:]
    assert "Prefect: local server started at http://127.0.0.1:" in run.output
    assert staging(data_dir) == (2000, 2000)
    assert active_slots(runtime, run.slot_name) == 0


def test_kill_9_of_the_orchestrator_mid_publish_then_a_rerun_completes(
    runtime: LocalRuntime, twin_url: str, tmp_path: Path
) -> None:
    arguments = [
        "--api-url",
        twin_url,
        "--total",
        "1000",
        "--seed",
        "1",
        "--data-dir",
        str(tmp_path / "data"),
        *SMALL,
    ]
    killed = run_cli(
        runtime,
        arguments,
        kill=(r"Task run 'load-batch-[\w-]+' - Finished in state Completed", the_orchestrator),
    )
    assert killed.killed and killed.returncode == -signal.SIGKILL
    slot = killed.slot_name
    assert active_slots(runtime, slot) == 1  # the dead run's lease still holds the slot
    rerun = run_cli(runtime, arguments)
    assert rerun.events("warehouse_slot_reclaimed"), rerun.output[-4000:]  # at once, not after the lease
    assert rerun.events("abandoned_batches_held_back")
    assert_recovered(runtime, rerun, tmp_path / "data", 1000, [killed.pid])
    assert (
        batch_statuses(tmp_path / "data")["held_back"] == 1
    )  # the batch the dead run loaded, visibly unmerged


def test_kill_9_of_the_raw_data_worker_restarts_it(
    runtime: LocalRuntime, twin_url: str, tmp_path: Path
) -> None:
    arguments = [
        "--api-url",
        twin_url,
        "--total",
        "1000",
        "--seed",
        "2",
        "--data-dir",
        str(tmp_path / "data"),
        *SMALL,
    ]
    run = run_cli(
        runtime, arguments, kill=(r"event=run_planned", served("flows.rawdata.worker:RawDataWorker"))
    )
    assert run.killed
    assert run.returncode == 0, run.output[-4000:]  # the worker was started again, the batch fetched again
    assert_recovered(runtime, run, tmp_path / "data", 1000, [])


def test_kill_9_of_the_gate_restarts_it(runtime: LocalRuntime, twin_url: str, tmp_path: Path) -> None:
    arguments = [
        "--api-url",
        twin_url,
        "--total",
        "1000",
        "--seed",
        "3",
        "--data-dir",
        str(tmp_path / "data"),
        *SMALL,
    ]
    run = run_cli(  # the gate in a process of its own (by default it runs inside the orchestrator)
        runtime,
        arguments,
        kill=(r"event=batch_landed", served("flows.gate.validation:ValidationGate")),
        PERSONS_GATE_PROCESS="separate",
    )
    assert run.killed
    assert run.returncode == 0, run.output[-4000:]
    assert run.events("gate_restarted")
    assert_recovered(runtime, run, tmp_path / "data", 1000, [])


def test_kill_9_of_the_local_prefect_server_then_a_rerun_completes(
    runtime: LocalRuntime, twin_url: str, tmp_path: Path
) -> None:
    arguments = [
        "--api-url",
        twin_url,
        "--total",
        "1000",
        "--seed",
        "4",
        "--data-dir",
        str(tmp_path / "data"),
        *SMALL,
    ]
    started = time.monotonic()
    killed = run_cli(
        runtime,
        arguments,
        kill=(r"Task run 'load-batch-[\w-]+' - Finished in state Completed", the_server(runtime)),
    )
    assert killed.killed and killed.returncode == 1
    assert time.monotonic() - started < 300  # the run stopped instead of retrying a dead API for minutes
    assert "the local Prefect server" in killed.output.splitlines()[-1]
    rerun = run_cli(runtime, arguments)
    assert "Prefect: local server started" in rerun.output  # replaced, not waited for
    assert_recovered(runtime, rerun, tmp_path / "data", 1000, [killed.pid])


def test_a_full_disk_mid_run_names_the_batch_merges_nothing_and_a_rerun_completes(
    runtime: LocalRuntime, twin_url: str, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=80m", "tmpfs", str(disk)], check=False, capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.decode().strip()}")
    try:
        data_dir = disk / "data"
        arguments = ["--api-url", twin_url, "--total", "1000", "--data-dir", str(data_dir), *SMALL]
        ballast = disk / "ballast"
        with ballast.open("wb") as handle:  # leave too little room for the run's files
            handle.write(b"\0" * (shutil.disk_usage(disk).free - 150 * 1024))
        full = run_cli(runtime, arguments, PERSONS_MIN_FREE_DISK_MIB="0")
        assert full.returncode == 1, full.output[-4000:]
        last = full.output.strip().splitlines()[-1]
        assert re.search(r"batch b\d+-\w+", last), full.output[-6000:]
        assert f"no space left on the disk of {data_dir}" in last, last
        merged = sum(
            persons
            for (persons,) in duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
            .execute("select persons from landing.batches where status = 'merged'")
            .fetchall()
        )
        assert staging(data_dir) == (merged, merged)  # whole batches or nothing
        ballast.unlink()
        rerun = run_cli(runtime, arguments)
        assert rerun.returncode == 0, rerun.output[-4000:]
        assert staging(data_dir) == (1000, 1000)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_no_raw_value_reached_the_local_server_or_the_client_home(
    runtime: LocalRuntime, module_twin: FakerTwin
) -> None:
    served = expected_from_served(
        module_twin.served(), TwinFaults(), REFERENCE_DATE, OFFLINE_DEMO_SECRET.encode()
    )
    needles = Needles.from_records(served.raw_records)
    assert len(needles.values) > 500
    assert (runtime.server_home / "prefect.db").exists()  # the local server's database, logs and states
    assert scan([runtime.server_home, runtime.client_home], needles) == []
