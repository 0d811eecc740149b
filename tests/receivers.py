"""HTTP peers on 127.0.0.1 (threads of this process): receivers that keep every JSON body posted to them (the
alert webhook, the automations' notifications, an OpenLineage receiver) and a hostile source that never
finishes its answer."""

from __future__ import annotations

import json
import socket
import threading
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self


class JsonReceiver:
    """Accepts POSTs on any path; each body is kept parsed (`events`), its path beside it, and, given a
    folder, as received on disk (`event-NNN.json`)."""

    def __init__(self, folder: Path | None = None, status: int = 204) -> None:
        self.folder = folder
        self.events: list[dict[str, Any]] = []
        self.paths: list[str] = []
        receiver = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    receiver.paths.append(self.path)
                    receiver.events.append(json.loads(body))
                    if receiver.folder is not None:
                        (receiver.folder / f"event-{len(receiver.events):03d}.json").write_bytes(body)
                self.send_response(status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the receiver (any path below it is accepted)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


class LineageReceiver(JsonReceiver):
    """Accepts POST /api/v1/lineage like Marquez (201 Created)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, status=201)

    def of_run(self, run_id: str) -> list[dict[str, Any]]:
        """The events received for one run, in order."""
        return [event for event in self.events if event["run"]["runId"] == run_id]


class TrickleServer:
    """A hostile source on 127.0.0.1: answers every request `200 OK` with a long body, then sends it one byte
    every `interval_s` (a per-read timeout never fires on it; only a deadline for the whole request does)."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        """The API base URL to point the pipeline at."""
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/api/v2"

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.requests += 1
            threading.Thread(target=self._trickle, args=(connection,), daemon=True).start()

    def _trickle(self, connection: socket.socket) -> None:
        with connection, suppress(OSError):
            connection.recv(65536)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
            )
            while not self._stopped.wait(self.interval_s):
                connection.sendall(b" ")

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stopped.set()
        self._listener.close()
