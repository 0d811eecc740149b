"""One object served from a process of its own: a fresh interpreter reached over a private Unix socket.

The raw-data worker and the validation gate run this way. A fresh interpreter (not a fork) inherits none of
Prefect's threads and imports neither Prefect nor the caller's main module; pickled results name their
classes by module. The authentication key travels on stdin, never on argv; the process exits when the
caller closes its stdin (or dies). Calls from several threads of the caller run concurrently in it.
"""

from __future__ import annotations

import importlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from multiprocessing.managers import BaseManager
from typing import IO, Any

from flows.runtime.environment import child_environment

_FOLDER_PREFIX = "persons-remote-"
_UNNAMED_GRACE_S = 600.0
_ENTRY = "import sys; from flows.runtime.remote import serve; serve(sys.argv[1], sys.argv[2])"


class RemoteProcessError(RuntimeError):
    """The served process could not start or went away."""


class _Manager(BaseManager):
    """A manager with one registered type (a class per process, so registrations never mix)."""


def _manager_class(typeid: str, factory: Any = None) -> type[BaseManager]:
    manager: type[BaseManager] = type(f"_{typeid}Manager", (_Manager,), {})
    manager.register(typeid, factory)
    return manager


def serve(address: str, factory_path: str) -> None:
    """Process entry point: serve `module:Class` on the socket until the caller closes our stdin."""
    module_name, _, class_name = factory_path.partition(":")
    factory = getattr(importlib.import_module(module_name), class_name)
    authkey = bytes.fromhex(sys.stdin.readline().strip())
    server = _manager_class(class_name, factory)(address=address, authkey=authkey).get_server()

    def exit_with_caller() -> None:
        sys.stdin.read()  # returns at EOF: the caller stopped us or died
        os._exit(0)

    threading.Thread(target=exit_with_caller, name="caller-watch", daemon=True).start()
    print("ready", flush=True)
    server.serve_forever()


class RemoteObject:
    """The caller's handle: starts the process, creates the object there, forwards method calls."""

    def __init__(
        self,
        factory_path: str,
        env: dict[str, str] | None = None,
        keep_env: Iterable[str] = (),
        start_timeout_s: float = 120.0,
    ):
        self._factory_path = factory_path
        self._typeid = factory_path.partition(":")[2]
        self._env = env or {}  # set for the process on top of its allow-listed environment
        self._keep_env = tuple(keep_env)  # further variables of ours it may see (never a secret)
        self._start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._folder: str | None = None
        self._manager: BaseManager | None = None

    def start(self) -> None:
        """Start the process (idempotent)."""
        with self._lock:
            if self._process is not None:
                return
            remove_stale_folders()
            # 0700: only this user reaches the socket; the pid names the owner, so leftovers can be told
            folder = tempfile.mkdtemp(prefix=f"{_FOLDER_PREFIX}{os.getpid()}-")
            address = os.path.join(folder, "object.sock")
            authkey = secrets.token_bytes(32)
            process = subprocess.Popen(  # noqa: S603 - our own module, run by our own interpreter
                [sys.executable, "-c", _ENTRY, address, self._factory_path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=child_environment(keep=self._keep_env, extra=self._env),  # none of our secrets
            )
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(authkey.hex().encode() + b"\n")
            process.stdin.flush()
            if not _wait_for_line(process.stdout, b"ready", self._start_timeout_s):
                process.kill()
                shutil.rmtree(folder, ignore_errors=True)
                raise RemoteProcessError(f"the {self._typeid} process did not start")
            manager = _manager_class(self._typeid)(address=address, authkey=authkey)
            manager.connect()
            self._process, self._folder, self._manager = process, folder, manager

    def create(self, *args: Any) -> Any:
        """A new object in the process (its constructor runs there); returns its proxy."""
        self.start()
        process, manager = self._process, self._manager
        assert manager is not None
        try:
            return getattr(manager, self._typeid)(*args)
        except (EOFError, OSError):  # the process or its socket went away (another caller closed it)
            self._close_if(process)
            raise RemoteProcessError(f"the {self._typeid} process stopped while starting") from None

    def call(self, proxy: Any, method: str, *args: Any) -> Any:
        """Call a method on a served object; a vanished process is reported as such."""
        process = self._process
        try:
            return getattr(proxy, method)(*args)
        except (EOFError, ConnectionError, BrokenPipeError, FileNotFoundError):
            self._close_if(process)
            raise RemoteProcessError(f"the {self._typeid} process stopped during {method}") from None

    def _close_if(self, process: subprocess.Popen[bytes] | None) -> None:
        """Close the process a call failed on, not one another caller has started since."""
        if process is not None:
            self.close(only=process)

    @property
    def pid(self) -> int | None:
        """The served process's id while it runs."""
        process = self._process
        return process.pid if process is not None else None

    def kill(self) -> None:
        """End the process at once, without waiting (a stop signal); `close` still removes its socket."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()

    def close(self, only: subprocess.Popen[bytes] | None = None) -> None:
        """Stop the process and remove its socket (with `only`: if it is still that process)."""
        with self._lock:
            if only is not None and self._process is not only:
                return
            process, folder = self._process, self._folder
            self._process = self._folder = self._manager = None
        try:
            if process is not None:
                assert process.stdin is not None
                process.stdin.close()  # the process exits when its stdin closes
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        finally:  # also when a stop signal interrupts the wait: the handle has already let go of the folder
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)


def remove_stale_folders(root: str | None = None) -> list[str]:
    """Remove socket folders of this user whose process died (a killed run cannot remove its own)."""
    from flows.runtime.server import process_alive  # noqa: PLC0415

    removed = []
    base = root or tempfile.gettempdir()
    for entry in os.scandir(base):
        if not entry.name.startswith(_FOLDER_PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        if entry.stat(follow_symlinks=False).st_uid != os.getuid():
            continue
        owner = re.match(rf"{_FOLDER_PREFIX}(\d+)-", entry.name)
        if owner:
            stale = not process_alive(int(owner.group(1)))
        else:  # a folder without its owner's pid: only once it is old enough to have bound its socket
            age_s = time.time() - entry.stat(follow_symlinks=False).st_mtime
            stale = age_s > _UNNAMED_GRACE_S and not _socket_answers(entry.path)
        if stale:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed


def _socket_answers(folder: str) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(os.path.join(folder, "object.sock")) == 0


def own_resources() -> dict[str, float]:
    """CPU seconds and peak RSS of the calling process (a served object reports its process's with it)."""
    import resource  # noqa: PLC0415

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "max_rss_mib": round(usage.ru_maxrss / 1024, 1),
    }


def _wait_for_line(stream: IO[bytes], expected: bytes, timeout_s: float) -> bool:
    """Whether `expected` arrives as the next line within the timeout."""
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    return bool(result) and result[0].strip() == expected
