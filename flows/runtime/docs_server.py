"""The pages a run makes, over http: a read-only server of a data folder's reports and docs on 127.0.0.1.

A browser refuses `file://` links from a web page (the Prefect UI's artifacts), so the report page, the
validation docs and the dbt docs are served here: `persons-pipeline serve` in the foreground, or started
detached by a run that lands in a local folder (one per data folder, reused by later runs, like the local
Prefect server). It serves `reports/` and `data_docs/` only, read-only, without directory listings, and
nothing outside the data folder.

This module never imports Prefect: it runs as its own small process.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import posixpath
import subprocess
import sys
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
STATE_FILE = ".docs-server.json"
HEALTH = "/__health"
DEFAULT_PORT = 8765


@dataclass(frozen=True)
class DocsServer:
    """A running docs server of one data folder."""

    pid: int
    port: int
    data_dir: str
    process_start: str | None = None

    @property
    def url(self) -> str:
        """Its address."""
        return f"http://127.0.0.1:{self.port}"

    def link(self, path: Path) -> str | None:
        """The http address of a file under the data folder's served folders; None for anything else."""
        try:
            relative = path.resolve().relative_to(Path(self.data_dir))
        except ValueError:
            return None
        served = bool(relative.parts) and relative.parts[0] in SERVED
        return f"{self.url}/{relative.as_posix()}" if served else None


class ReadOnlyHandler(SimpleHTTPRequestHandler):
    """GET and HEAD of files under reports/ and data_docs/; no listing, nothing else."""

    def translate_path(self, path: str) -> str:
        """The file a URL names; a path that does not exist (404) for anything outside the served folders."""
        parts = [part for part in posixpath.normpath(unquote(urlsplit(path).path)).split("/") if part]
        if not parts or parts[0] not in SERVED or any(part in {".", ".."} for part in parts):
            return str(Path(self.directory) / ".not-served")
        target = Path(self.directory, *parts)
        if target.is_dir():
            target = target / "index.html"
        resolved = target.resolve()
        return str(resolved) if resolved.is_relative_to(Path(self.directory).resolve()) else "/.not-served"

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
        """Quiet: the pages' paths are the run's ids, but nothing needs logging here."""


def serve(data_dir: Path, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A server of the data folder's pages (not started: `serve_forever` it)."""
    handler = functools.partial(ReadOnlyHandler, directory=str(data_dir.resolve()))
    return ThreadingHTTPServer((host, port), handler)


def state_path(data_dir: Path) -> Path:
    """Where the data folder's docs server is recorded."""
    return data_dir / STATE_FILE


def running_docs_server(data_dir: Path) -> DocsServer | None:
    """The data folder's docs server if it runs and answers."""
    try:
        found = DocsServer(**json.loads(state_path(data_dir).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not process_alive(found.pid, found.process_start):
        return None
    try:
        answered = httpx.get(f"{found.url}{HEALTH}", timeout=2).status_code == 200
    except httpx.HTTPError:
        answered = False
    return found if answered else None


def ensure_docs_server(data_dir: Path, port: int = DEFAULT_PORT, start_timeout_s: float = 30) -> DocsServer:
    """The data folder's docs server, started detached unless it runs (a free port if `port` is taken)."""
    data_dir = data_dir.resolve()
    found = running_docs_server(data_dir)
    if found is not None:
        return found
    chosen = port if port and _free(port) else 0
    command = [sys.executable, "-m", "flows.runtime.docs_server", "--data-dir", str(data_dir)]
    process = subprocess.Popen(  # noqa: S603 - our own module, by our own interpreter
        [*command, "--port", str(chosen), "--state-file"],
        env=child_environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives the run that started it, like the local Prefect server
        close_fds=True,
    )
    deadline = time.monotonic() + start_timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        found = running_docs_server(data_dir)
        if found is not None and found.pid == process.pid:
            return found
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the docs server of {data_dir} did not start within {start_timeout_s:.0f} s")


def stop_docs_server(data_dir: Path) -> DocsServer | None:
    """Stop the data folder's docs server, if one runs; what was stopped."""
    found = running_docs_server(data_dir.resolve())
    if found is not None:
        os.kill(found.pid, 15)
    state_path(data_dir.resolve()).unlink(missing_ok=True)
    return found


def _free(port: int) -> bool:
    import socket  # noqa: PLC0415

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def main(argv: list[str] | None = None) -> int:
    """`python -m flows.runtime.docs_server`: serve a data folder until stopped."""
    parser = argparse.ArgumentParser(prog="docs-server")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--state-file", action="store_true", help="record the server in the data folder")
    args = parser.parse_args(argv)
    server = serve(args.data_dir, args.port)
    if args.state_file:
        port = int(server.server_address[1])
        state = DocsServer(os.getpid(), port, str(args.data_dir.resolve()), process_start_time(os.getpid()))
        state_path(args.data_dir).write_text(json.dumps(asdict(state)))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
