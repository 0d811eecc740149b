"""The pages runs make, over http: one read-only server per user on 127.0.0.1 for every data folder's
reports and docs.

A browser refuses `file://` links from a web page (the Prefect UI's artifacts), so the report pages, the
validation docs and the dbt docs are served here. A run that lands in a local folder registers its data
folder and starts the server if it is not running (detached, reused by later runs, like the local Prefect
server; `persons-pipeline server stop` stops both); `persons-pipeline serve` runs it in the foreground.
Each data folder is served under a path of its own (`/<folder id>/reports/...`, `/<folder id>/data_docs/...`):
only registered folders, only those two sub-folders, read-only, without directory listings.

This module never imports Prefect: it runs as its own small process.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import posixpath
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from flows.runtime.environment import child_environment
from flows.runtime.server import process_alive, process_start_time

SERVED = ("reports", "data_docs")  # the only folders of a data folder the server shows
HEALTH = "/__health"
STATE_FILE = "server.json"
FOLDERS_FILE = "folders.json"


def folder_id(data_dir: Path) -> str:
    """The path a data folder is served under: a digest of its absolute path (no path is shown)."""
    return hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]


def registered_folders(home: Path) -> dict[str, str]:
    """The data folders the server may show, by their id."""
    try:
        folders = json.loads((home / FOLDERS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(key): str(value) for key, value in folders.items()} if isinstance(folders, dict) else {}


def register_folder(home: Path, data_dir: Path) -> str:
    """Let the server show a data folder's pages; its id."""
    home.mkdir(parents=True, exist_ok=True)
    folders = registered_folders(home)
    identifier = folder_id(data_dir)
    if folders.get(identifier) != str(data_dir.resolve()):
        folders[identifier] = str(data_dir.resolve())
        handle, temporary = tempfile.mkstemp(dir=home, prefix=".folders-")
        with os.fdopen(handle, "w") as stream:
            json.dump(folders, stream)
        os.replace(temporary, home / FOLDERS_FILE)  # whole or not at all: a server reads it any time
    return identifier


@dataclass(frozen=True)
class DocsServer:
    """The running server."""

    pid: int
    port: int
    home: str
    process_start: str | None = None

    @property
    def url(self) -> str:
        """Its address."""
        return f"http://127.0.0.1:{self.port}"

    def link(self, path: Path) -> str | None:
        """The http address of a file in a registered data folder's served folders; None for anything else."""
        resolved = path.resolve()
        for identifier, folder in registered_folders(Path(self.home)).items():
            if resolved.is_relative_to(folder):
                relative = resolved.relative_to(folder)
                if relative.parts and relative.parts[0] in SERVED:
                    return f"{self.url}/{identifier}/{relative.as_posix()}"
        return None


class ReadOnlyHandler(SimpleHTTPRequestHandler):
    """GET and HEAD of files under a registered folder's reports/ and data_docs/; no listing, nothing else."""

    home: Path

    def translate_path(self, path: str) -> str:
        """The file a URL names; a path that does not exist (404) for anything the server does not show."""
        parts = [part for part in posixpath.normpath(unquote(urlsplit(path).path)).split("/") if part]
        folder = registered_folders(self.home).get(parts[0]) if parts else None
        if folder is None or len(parts) < 2 or parts[1] not in SERVED or ".." in parts:
            return str(self.home / ".not-served")
        target = Path(folder, *parts[1:])
        if target.is_dir():
            target = target / "index.html"
        resolved = target.resolve()
        return str(resolved) if resolved.is_relative_to(Path(folder).resolve()) else "/.not-served"

    def do_GET(self) -> None:
        if self.path == HEALTH:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            return
        super().do_GET()

    def list_directory(self, path: str | os.PathLike[str]) -> None:  # type: ignore[override]
        self.send_error(HTTPStatus.NOT_FOUND, "no listing")

    def end_headers(self) -> None:
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: nothing here needs logging."""


def serve(home: Path, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A server of the registered folders' pages (not started: `serve_forever` it)."""
    handler = type("Handler", (ReadOnlyHandler,), {"home": home})
    return ThreadingHTTPServer((host, port), functools.partial(handler, directory=str(home)))


def running_docs_server(home: Path) -> DocsServer | None:
    """The server if it runs and answers."""
    try:
        found = DocsServer(**json.loads((home / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not process_alive(found.pid, found.process_start):
        return None
    try:
        answered = httpx.get(f"{found.url}{HEALTH}", timeout=2).status_code == 200
    except httpx.HTTPError:
        answered = False
    return found if answered else None


def ensure_docs_server(home: Path, port: int, start_timeout_s: float = 30) -> DocsServer:
    """The running server, started detached if it is not (a free port if `port` is taken)."""
    home = home.resolve()
    found = running_docs_server(home)
    if found is not None:
        return found
    home.mkdir(parents=True, exist_ok=True)
    chosen = port if port and _free(port) else 0
    process = subprocess.Popen(  # noqa: S603 - our own module, by our own interpreter
        [sys.executable, "-m", "flows.runtime.docs_server", "--home", str(home), "--port", str(chosen)],
        env=child_environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives the run that started it, like the local Prefect server
        close_fds=True,
    )
    deadline = time.monotonic() + start_timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        found = running_docs_server(home)
        if found is not None and found.pid == process.pid:
            return found
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the pages server (home {home}) did not start within {start_timeout_s:.0f} s")


def stop_docs_server(home: Path) -> DocsServer | None:
    """Stop the server, if one runs; what was stopped."""
    found = running_docs_server(home.resolve())
    if found is not None:
        os.kill(found.pid, signal.SIGTERM)
    (home / STATE_FILE).unlink(missing_ok=True)
    return found


def _free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def main(argv: list[str] | None = None) -> int:
    """`python -m flows.runtime.docs_server`: serve the registered folders until stopped."""
    parser = argparse.ArgumentParser(prog="docs-server")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    server = serve(args.home, args.port)
    state = DocsServer(
        os.getpid(), int(server.server_address[1]), str(args.home.resolve()), process_start_time(os.getpid())
    )
    (args.home / STATE_FILE).write_text(json.dumps(asdict(state)))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
