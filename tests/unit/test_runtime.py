"""The runtime around a run: the data folder preflight, leftovers of killed runs, slot holders' liveness."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.runtime.preflight import EnvironmentProblem, check_data_dir, is_disk_full
from flows.runtime.remote import RemoteObject, remove_stale_folders
from flows.runtime.server import process_alive, process_start_time

SCRIPT = Path(sys.executable).parent / "persons-pipeline"


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "data"
    file.write_text("not a folder")
    with pytest.raises(EnvironmentProblem, match="is a file, not a folder"):
        check_data_dir(file, 1)
    with pytest.raises(EnvironmentProblem, match="is a file"):
        check_data_dir(file / "below", 1)


def test_a_disk_without_room_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match=r"MiB free .*PERSONS_MIN_FREE_DISK_MIB"):
        check_data_dir(tmp_path / "data", 10**9)
    check_data_dir(tmp_path / "data", 1)  # room enough: created, probed, accepted
    assert (tmp_path / "data").is_dir() and not list((tmp_path / "data").iterdir())


def test_disk_full_is_recognised_through_wrapping_errors() -> None:
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as inner:
            raise RuntimeError("write failed") from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)
    assert not is_disk_full(RuntimeError("other"))


@pytest.mark.parametrize("kind", ["file", "read-only", "full"])
def test_the_cli_refuses_a_bad_data_dir_in_one_line_before_any_work(tmp_path: Path, kind: str) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "PERSONS_PREFECT_SERVER_HOME": str(tmp_path / "no-server")}
    env.pop("PREFECT_API_URL", None)
    mounted = False
    if kind == "file":
        data.write_text("x")
    elif kind == "read-only":
        data.mkdir()
        mounted = _mount(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(data)])
    else:  # a disk with 2 MiB: below the 64 MiB a run needs to start
        data.mkdir()
        mounted = _mount(["-t", "tmpfs", "-o", "size=2m", "tmpfs", str(data)])
    try:
        result = subprocess.run(
            [str(SCRIPT), "run", "--api-url", "http://127.0.0.1:9/api/v2", "--data-dir", str(data)],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    finally:
        if mounted:
            subprocess.run(["umount", str(data)], check=True)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("persons-pipeline run: error: --data-dir"), lines
    expected = {"file": "is a file", "read-only": "Read-only file system", "full": "MiB free"}[kind]
    assert expected in lines[0]
    assert not (tmp_path / "no-server").exists()  # refused before any Prefect server was started


def _mount(arguments: list[str]) -> bool:
    result = subprocess.run(["mount", *arguments], check=False, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"mounting is not permitted here: {result.stderr.strip()}")
    return True


@pytest.fixture
def short_tmp_path() -> Iterator[Path]:
    """A temporary folder with a short path: a socket's path has at most 107 bytes, and pytest's tmp_path
    (longer still under pytest-xdist) can exceed it."""
    folder = Path(tempfile.mkdtemp(prefix="sockets-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_socket_folders_of_dead_processes_are_removed(short_tmp_path: Path) -> None:
    tmp_path = short_tmp_path
    stale = tmp_path / f"persons-remote-{dead_pid()}-abc"
    live = tmp_path / f"persons-remote-{os.getpid()}-def"
    unowned_stale = tmp_path / "persons-remote-xyz"  # an older run's folder: its socket does not answer
    unowned_new = tmp_path / "persons-remote-new"  # just made by a process that has not bound its socket yet
    for folder in (stale, live, unowned_stale, unowned_new):
        folder.mkdir()
    an_hour_ago = time.time() - 3600
    os.utime(unowned_stale, (an_hour_ago, an_hour_ago))
    with socket.socket(socket.AF_UNIX) as listener:
        answering = tmp_path / "persons-remote-answering"
        answering.mkdir()
        listener.bind(str(answering / "object.sock"))
        listener.listen()
        removed = remove_stale_folders(str(tmp_path))
    assert sorted(removed) == sorted([str(stale), str(unowned_stale)])
    assert live.exists() and answering.exists() and unowned_new.exists()


def test_a_served_process_names_its_folder_after_its_owner() -> None:
    remote = RemoteObject("flows.gate.validation:GateResult")
    remote.start()
    try:
        assert remote.pid is not None and process_alive(remote.pid, process_start_time(remote.pid))
        folders = [name for name in os.listdir(tempfile.gettempdir()) if name.startswith("persons-remote-")]
        assert any(name.startswith(f"persons-remote-{os.getpid()}-") for name in folders)
    finally:
        remote.close()


def test_a_stop_that_interrupts_closing_still_removes_the_socket_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A stop signal raises in the main thread wherever it is: here while close waits for the process to end.
    remote = RemoteObject("flows.gate.validation:GateResult")
    remote.start()
    process, folder = remote._process, remote._folder  # what close must let go of
    assert process is not None and folder is not None and os.path.isdir(folder)

    def interrupted(timeout: float | None = None) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(process, "wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        remote.close()
    assert not os.path.exists(folder)
    monkeypatch.undo()
    process.kill()
    process.wait()


def test_liveness_tells_a_dead_or_reused_pid(tmp_path: Path) -> None:
    from flows.run.slots import SlotOwner, read_owners

    assert not process_alive(dead_pid())
    assert process_alive(os.getpid(), process_start_time(os.getpid()))
    assert not process_alive(os.getpid(), "1")  # same pid, another start time: another process
    host = socket.gethostname()
    for name, pid in (("dead", dead_pid()), ("alive", os.getpid())):
        owner = SlotOwner(
            name, f"run-{name}", host, pid, process_start_time(pid), "2026-01-01T00:00:00+00:00"
        )
        (tmp_path / f"{name}.json").write_text(json.dumps(owner.__dict__))
    verdicts = {owner.lease_id: owner.is_dead_here() for _, owner in read_owners(tmp_path)}
    assert verdicts == {"dead": True, "alive": False}
