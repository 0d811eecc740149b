"""An OpenLineage receiver on 127.0.0.1 (a thread of http.server): keeps every event posted to it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any


class LineageReceiver:
    """Accepts POST /api/v1/lineage like Marquez; each body is kept, parsed and as received on disk."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.events: list[dict[str, Any]] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    receiver.paths.append(self.path)
                    receiver.events.append(json.loads(body))
                    (receiver.folder / f"event-{len(receiver.events):03d}.json").write_bytes(body)
                self.send_response(201)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL to set as PERSONS_LINEAGE_URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def of_run(self, run_id: str) -> list[dict[str, Any]]:
        """The events received for one run, in order."""
        return [event for event in self.events if event["run"]["runId"] == run_id]

    def __enter__(self) -> LineageReceiver:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
