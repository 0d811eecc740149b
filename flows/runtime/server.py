"""The local Prefect server: started on demand, detached, reused by every later run on this machine.

Used when PREFECT_API_URL is not set (a laptop, `make run`, `make image-test`); a deployed run gets its
API URL from the work pool. Prefect's own fallback, a temporary server per run, costs ~16 s per run and fails
the run when it is not up within 20 s on a busy machine; a long-lived server is started once, given the time
it needs, and then costs a run nothing to start.

- its own PREFECT_HOME (never a client's: two processes on one SQLite file give "database is locked");
- started detached (its own session), so a run that is killed leaves it serving the next run;
- a lock file, so two runs at once start one server; a state file with its pid and port;
- health-checked on every use; a dead or hung one is replaced;
- concurrency leases on disk, so slots held by a run survive a server restart and expire there.

This module never imports Prefect: it only starts and probes the `prefect` command.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from flows.runtime.environment import child_environment

LEASE_STORAGE = "prefect.server.concurrency.lease_storage.filesystem"


class LocalServerError(RuntimeError):
    """The local Prefect server could not be started or reached; the message is one line."""


@dataclass(frozen=True)
class ServerState:
    """The running server as its state file records it."""

    pid: int
    port: int
    started_at: float
    process_start: str | None = None

    @property
    def url(self) -> str:
        """The UI's address."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The value for PREFECT_API_URL."""
        return f"{self.url}/api"


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of a process (tells a live process from a later one with the same pid)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return fields[19] if len(fields) > 19 else None


def process_alive(pid: int, process_start: str | None = None) -> bool:
    """Whether `pid` runs (and, where known, is the same process that started at `process_start`)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if _is_zombie(pid):
        return False
    current = process_start_time(pid)
    return process_start is None or current is None or current == process_start


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def state_path(home: Path) -> Path:
    """Where the server's pid and port are recorded."""
    return home / "server.json"


def read_state(home: Path) -> ServerState | None:
    """The recorded server, if any."""
    try:
        return ServerState(**json.loads(state_path(home).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def healthy(state: ServerState, timeout_s: float = 3.0) -> bool:
    """Whether the server answers its health check."""
    try:
        return httpx.get(f"{state.api_url}/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def running_server(home: Path) -> ServerState | None:
    """The recorded server if it is alive and healthy."""
    state = read_state(home)
    if state and process_alive(state.pid, state.process_start) and healthy(state):
        return state
    return None


@contextmanager
def _start_lock(home: Path, timeout_s: float) -> Iterator[None]:
    """One starter at a time per server home (other runs wait here, then reuse what it started)."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / "server.lock").open("a") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LocalServerError(
                        f"another process has been starting the local Prefect server for {timeout_s:.0f} s "
                        f"(lock {home / 'server.lock'})"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def server_environment(home: Path) -> dict[str, str]:
    """The server's environment: what it needs to run, none of the caller's PREFECT_* (a client's home must
    not leak in) and none of the pipeline's secrets (it outlives the run)."""
    env = child_environment()
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE=LEASE_STORAGE,
        PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS="5",
        PREFECT_LOGGING_LEVEL="WARNING",
        DO_NOT_TRACK="1",
    )
    return env


def _port_taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _prefect_command() -> list[str]:
    script = Path(sys.executable).parent / "prefect"
    return [str(script)] if script.exists() else [sys.executable, "-m", "prefect"]


def ensure_server(home: Path, port: int, start_timeout_s: float) -> tuple[ServerState, bool]:
    """The running local server, started (or replaced) if needed; (state, whether it was started now)."""
    home = home.resolve()
    with _start_lock(home, start_timeout_s + 30):
        state = read_state(home)
        if state and process_alive(state.pid, state.process_start):
            if healthy(state):
                return state, False
            # Alive but not answering: a starter that was killed, or a hung server. Give it its start time.
            if _wait_healthy(state, max(0.0, state.started_at + start_timeout_s - time.time())):
                return state, False
        if state:
            stop_process(state)
        return _start(home, port, start_timeout_s), True


def _start(home: Path, port: int, start_timeout_s: float) -> ServerState:
    chosen = port if port and not _port_taken(port) else _free_port()
    _make_private(home)
    log_path = home / "server.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - Prefect's own command, our arguments
            [*_prefect_command(), "server", "start", "--host", "127.0.0.1", "--port", str(chosen)],
            # The UI calls the API here: by default Prefect assumes port 4200, whatever port it serves on.
            env={**server_environment(home), "PREFECT_UI_API_URL": f"http://127.0.0.1:{chosen}/api"},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # detached: outlives the run that started it
            close_fds=True,
            umask=0o077,  # its database records runs, parameters and logs: the owner's alone
        )
    state = ServerState(process.pid, chosen, time.time(), process_start_time(process.pid))
    state_path(home).write_text(json.dumps(asdict(state)))
    deadline = time.monotonic() + start_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            state_path(home).unlink(missing_ok=True)
            raise LocalServerError(
                f"the local Prefect server exited with code {process.returncode} while starting "
                f"(log: {log_path}): {_last_line(log_path)}"
            )
        if healthy(state, timeout_s=2.0):
            return state
        time.sleep(0.25)
    stop_process(state)
    raise LocalServerError(
        f"the local Prefect server did not answer within {start_timeout_s:.0f} s "
        f"(PERSONS_PREFECT_SERVER_START_TIMEOUT_S; log: {log_path})"
    )


def _make_private(home: Path) -> None:
    """The server's home and what an earlier server left in it (its database, log) the owner's alone."""
    home.chmod(0o700)
    for path in home.iterdir():
        if path.is_file() and path.stat().st_mode & 0o077:
            path.chmod(0o600)


def _wait_healthy(state: ServerState, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process_alive(state.pid, state.process_start):
        if healthy(state, timeout_s=2.0):
            return True
        time.sleep(0.5)
    return False


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def exit_if_server_dies(state: ServerState, interval_s: float = 2.0) -> None:
    """Watch the local server from this run: if it dies, stop the run at once (one line, exit 1).

    Without its API a run cannot record anything and Prefect's client would retry for minutes; ending it
    makes it a killed run, which the same command run again recovers from (slot, batches, processes).
    """
    import threading  # noqa: PLC0415

    def watch() -> None:
        while process_alive(state.pid, state.process_start):
            time.sleep(interval_s)
        sys.stderr.write(
            f"persons-pipeline run: error: the local Prefect server (pid {state.pid}) stopped mid-run; "
            "run the same command again to complete it\n"
        )
        sys.stderr.flush()
        os._exit(1)

    threading.Thread(target=watch, name="prefect-server-watch", daemon=True).start()


def stop_process(state: ServerState, timeout_s: float = 15.0) -> None:
    """Stop the server's process group: SIGTERM, then SIGKILL if it lingers."""
    if not process_alive(state.pid, state.process_start):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(state.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not process_alive(state.pid, state.process_start):
                return
            time.sleep(0.1)


def stop_server(home: Path) -> ServerState | None:
    """Stop the recorded server (if it runs) and forget it; returns what was stopped."""
    home = home.resolve()
    with _start_lock(home, 60):
        state = read_state(home)
        if state is None:
            return None
        stop_process(state)
        state_path(home).unlink(missing_ok=True)
        return state
