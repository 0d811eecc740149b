"""Offline, deterministic twin of the public Faker API ``/api/v2/persons``: generator, HTTP server and CLI."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import orjson

from faker_twin.constants import (
    _FAULT_SEED,
    API_PREFIX,
    CONTROL_PREFIX,
    DEFAULT_BIRTHDAY_END,
    DEFAULT_BIRTHDAY_START,
    DEFAULT_LOCALE,
    DEFAULT_QUANTITY,
    MAX_QUANTITY,
    PERSONS_PATH,
)
from faker_twin.faults import TwinFaults
from faker_twin.pools import _countries, _pools_for
from faker_twin.records import generate_page
from faker_twin.serialise import _persons_body

log = logging.getLogger(__name__)

# ------------------------------------------------------------ HTTP


class _BadRequestError(ValueError):
    """A query parameter the real API would reject with HTTP 400."""


@dataclass(frozen=True)
class _PersonsQuery:
    """Validated ``/persons`` query parameters."""

    seed: int
    seed_text: str
    quantity: int
    locale: str
    birthday_start: date
    birthday_end: date


# Bounded length: int() refuses strings of more than 4300 digits, longer seeds are hashed instead.
_SEED_INTEGER = re.compile(r"-?[0-9]{1,40}")
_QUANTITY = re.compile(r"[0-9]+")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _parse_seed(text: str | None) -> tuple[int, str]:
    """Integer seed plus the text to echo; non-numeric seeds are hashed stably, a missing one is random."""
    if not text:
        seed = secrets.randbelow(2**31)
        return seed, str(seed)
    if _SEED_INTEGER.fullmatch(text):
        return int(text), text
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big"), text


def _parse_quantity(text: str | None) -> int:
    """``_quantity`` as an int in [1, 1000]; larger values are capped like the real API."""
    if text is None or text == "":
        return DEFAULT_QUANTITY
    digits = text.lstrip("0")
    if not _QUANTITY.fullmatch(text) or not digits:
        raise _BadRequestError(f"_quantity must be a positive integer, got {text!r}")
    # Only the length matters beyond 4 digits; int() on huge inputs would raise.
    return MAX_QUANTITY if len(digits) > 4 else min(int(digits), MAX_QUANTITY)


def _parse_date(name: str, text: str | None, default: date) -> date:
    """A strict ``YYYY-MM-DD`` date parameter."""
    if text is None or text == "":
        return default
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise _BadRequestError(f"{name} must be a date YYYY-MM-DD, got {text!r}") from None


def _parse_persons_query(params: Mapping[str, str]) -> _PersonsQuery:
    """Validate the query string of a ``/persons`` request."""
    seed, seed_text = _parse_seed(params.get("_seed"))
    start = _parse_date("_birthday_start", params.get("_birthday_start"), DEFAULT_BIRTHDAY_START)
    end = _parse_date("_birthday_end", params.get("_birthday_end"), DEFAULT_BIRTHDAY_END)
    if start > end:
        raise _BadRequestError(f"_birthday_start {start} is after _birthday_end {end}")
    quantity = _parse_quantity(params.get("_quantity"))
    return _PersonsQuery(seed, seed_text, quantity, params.get("_locale") or DEFAULT_LOCALE, start, end)


def _alters_records(faults: TwinFaults) -> bool:
    """Whether a fault changes the records themselves (then pages go through ``generate_page``)."""
    return (
        faults.bad_record_rate > 0.0
        or faults.coordinates != "flat"
        or faults.extra_fields
        or faults.pii_country_rate > 0.0
        or faults.hostile_rate > 0.0
    )


# Pages are built one at a time. The work is CPU-bound under one GIL anyway, but numpy releases the GIL
# inside its calls, so concurrent handlers would hand it over hundreds of times per page; that switching
# cost ~50% more CPU per page with 4 clients. Waiting handlers block on this lock instead.
_PAGE_LOCK = threading.Lock()


def _page_json(query: _PersonsQuery, faults: TwinFaults) -> bytes:
    """Body of a valid ``/persons`` query, seed echoed as sent; fast writer unless faults alter records."""
    with _PAGE_LOCK:
        if not _alters_records(faults):
            start, end = query.birthday_start, query.birthday_end
            return _persons_body(query.seed, query.seed_text, query.quantity, query.locale, start, end)
        page = generate_page(
            query.seed,
            query.quantity,
            query.locale,
            query.birthday_start,
            query.birthday_end,
            faults.bad_record_rate,
            faults.coordinates,
            faults.extra_fields,
            faults.pii_country_rate,
            faults.hostile_rate,
        )
        page["seed"] = query.seed_text
        return page_bytes(page)


def page_bytes(page: dict[str, Any]) -> bytes:
    """The body of a page: orjson, unless a hostile record holds undecodable bytes (surrogateescape), which
    go out as those raw bytes - invalid UTF-8, on purpose."""
    try:
        return orjson.dumps(page)
    except orjson.JSONEncodeError:
        text = json.dumps(page, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8", "surrogateescape")


@dataclass
class _TwinState:
    """Faults and counters shared by all handler threads; every access goes through ``lock``."""

    faults: TwinFaults
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    persons_requests: int = 0
    persons_served: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    served: list[dict[str, str]] = field(default_factory=list)

    def begin(self, is_persons: bool) -> tuple[int, TwinFaults]:
        """Count a request; returns its number among /persons requests and the faults in force."""
        with self.lock:
            self.requests += 1
            if is_persons:
                self.persons_requests += 1
            return self.persons_requests, self.faults

    def finish(self, status: int, params: dict[str, str] | None = None, persons: int = 0) -> None:
        """Record a response status and, for served pages, the query and the number of persons."""
        with self.lock:
            self.by_status[str(status)] += 1
            if params is not None:
                self.served.append(params)
                self.persons_served += persons

    def stats(self) -> dict[str, Any]:
        """Snapshot of the counters."""
        with self.lock:
            return {
                "requests": self.requests,
                "persons_requests": self.persons_requests,
                "by_status": dict(sorted(self.by_status.items())),
                "persons_served": self.persons_served,
            }

    def served_params(self) -> list[dict[str, str]]:
        """Copy of the served log."""
        with self.lock:
            return [dict(params) for params in self.served]

    def set_faults(self, faults: TwinFaults) -> None:
        """Swap the faults atomically."""
        with self.lock:
            self.faults = faults

    def reset(self) -> None:
        """Zero counters and the served log (faults stay); fault decisions restart from request 1."""
        with self.lock:
            self.requests = self.persons_requests = self.persons_served = 0
            self.by_status.clear()
            self.served.clear()


@dataclass(frozen=True)
class _FaultPlan:
    """What the fault layer does to one /persons request."""

    status: int | None  # 429/5xx replaces the response; None serves the page
    truncate_at: float | None  # fraction of the body to keep, None keeps it whole


def _plan_faults(number: int, faults: TwinFaults) -> _FaultPlan:
    """Deterministic fault decision for the ``number``-th /persons request since start or reset."""
    if faults.rate_limit_every and number % faults.rate_limit_every == 0:
        return _FaultPlan(429, None)
    draws = np.random.default_rng(np.random.SeedSequence(_FAULT_SEED, spawn_key=(number,))).random(4)
    if draws[0] < faults.error_rate:
        return _FaultPlan((500, 502, 503)[int(draws[1] * 3)], None)
    return _FaultPlan(None, float(draws[3]) if draws[2] < faults.truncate_rate else None)


def _truncate(body: bytes, fraction: float) -> bytes:
    """Cut a body strictly inside, so what remains can never be complete JSON."""
    return body[: 1 + int(fraction * (len(body) - 1))]


def _error_body_dict(status: int, message: str) -> dict[str, Any]:
    """JSON error envelope in the real API's style."""
    return {"status": "ERROR", "code": status, "message": message}


def _error_body(status: int, message: str) -> bytes:
    """Serialised error envelope."""
    return orjson.dumps(_error_body_dict(status, message))


class _TwinServer(ThreadingHTTPServer):
    """Threading server that also tracks open keep-alive sockets so ``stop`` can really close them."""

    daemon_threads = True  # an idle keep-alive client must never keep the process alive
    request_queue_size = 128  # the default backlog of 5 makes parallel clients wait on SYN retries

    def __init__(self, address: tuple[str, int], state: _TwinState) -> None:
        """Bind and remember the shared state."""
        super().__init__(address, _TwinHandler)
        self.state = state
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket, is_open: bool) -> None:
        """Add or remove a live connection."""
        with self._connections_lock:
            if is_open:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut down idle keep-alive connections; their handler threads then end."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # the peer may have closed it already
                connection.shutdown(socket.SHUT_RDWR)


class _TwinHandler(BaseHTTPRequestHandler):
    """Request handler for the API and the ``/__twin/`` control endpoints."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle on, small responses stall ~40 ms on delayed ACKs.
    disable_nagle_algorithm = True
    server: _TwinServer

    def setup(self) -> None:
        """Register the connection for ``stop``."""
        super().setup()
        self.server.track(self.connection, is_open=True)

    def finish(self) -> None:
        """Unregister the connection."""
        try:
            super().finish()
        finally:
            self.server.track(self.connection, is_open=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent: one stderr line per request would drown the pipeline's own output."""

    def do_GET(self) -> None:
        """Route GET requests."""
        self._guarded(self._get)

    def do_POST(self) -> None:
        """Route POST requests (control endpoints only)."""
        self._guarded(self._post)

    def _guarded(self, route: Callable[[], None]) -> None:
        """Answer 500 instead of dropping the connection when the twin itself has a bug."""
        try:
            route()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. a timeout during injected latency); nothing left to answer.
            self.close_connection = True
        except Exception:
            log.exception("faker twin failed on %s %s", self.command, self.path)
            self._send(500, b"faker twin internal error", "text/plain")

    def _send(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        """Write one complete response with an exact Content-Length (keep-alive relies on it)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, payload: Any) -> None:
        """Serialise and send a JSON payload."""
        self._send(status, orjson.dumps(payload), "application/json")

    def _get(self) -> None:
        """GET: control endpoints or the API."""
        parts = urlsplit(self.path)
        if parts.path.startswith(CONTROL_PREFIX):
            self._control_get(parts.path)
        else:
            self._api_get(parts.path.rstrip("/"), dict(parse_qsl(parts.query, keep_blank_values=True)))

    def _control_get(self, path: str) -> None:
        """Stats, served log and current faults."""
        state = self.server.state
        if path == "/__twin/stats":
            self._send_json(200, state.stats())
        elif path == "/__twin/served":
            self._send_json(200, state.served_params())
        elif path == "/__twin/faults":
            with state.lock:
                faults = state.faults
            self._send_json(200, faults.to_dict())
        else:
            self._send_json(404, _error_body_dict(404, f"unknown control path {path}"))

    def _post(self) -> None:
        """POST: fault switch and reset."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        if path == "/__twin/faults":
            self._post_faults(body)
        elif path == "/__twin/reset":
            self.server.state.reset()
            self._send_json(200, {"status": "OK"})
        else:
            self._send_json(404, _error_body_dict(404, f"unknown path {path}"))

    def _post_faults(self, body: bytes) -> None:
        """Replace the faults with the JSON body (missing fields -> defaults)."""
        try:
            payload = json.loads(body or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("body must be a JSON object")
            faults = TwinFaults.from_dict(payload)
        except (ValueError, TypeError) as exc:
            self._send_json(400, _error_body_dict(400, str(exc)))
            return
        self.server.state.set_faults(faults)
        self._send_json(200, faults.to_dict())

    def _api_get(self, path: str, params: dict[str, str]) -> None:
        """The public API: ``/api/v2/persons`` with faults applied, 404 elsewhere."""
        state = self.server.state
        number, faults = state.begin(is_persons=path == PERSONS_PATH)
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000)
        if path != PERSONS_PATH:
            state.finish(404)
            self._send(404, _error_body(404, f"unknown resource {path}"), "application/json")
            return
        plan = _plan_faults(number, faults)
        if plan.status == 429:
            state.finish(429)
            body = b"Too Many Requests"
            self._send(429, body, "text/plain", {"Retry-After": str(faults.retry_after_s)})
        elif plan.status is not None:
            state.finish(plan.status)
            self._send(plan.status, f"faker twin: injected HTTP {plan.status}".encode(), "text/plain")
        else:
            self._serve_persons(params, faults, plan)

    def _serve_persons(self, params: dict[str, str], faults: TwinFaults, plan: _FaultPlan) -> None:
        """Validate, generate, maybe truncate, send."""
        state = self.server.state
        try:
            query = _parse_persons_query(params)
        except _BadRequestError as exc:
            state.finish(400)
            self._send(400, _error_body(400, str(exc)), "application/json")
            return
        body = _page_json(query, faults)
        if plan.truncate_at is not None:
            body = _truncate(body, plan.truncate_at)
        state.finish(200, params, query.quantity)
        self._send(200, body, "application/json")


class FakerTwin:
    """The twin as a background server; use as a context manager or call ``start``/``stop``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, faults: TwinFaults | None = None) -> None:
        """Configure; nothing listens before ``start``."""
        self._host = host
        self._requested_port = port
        self._state = _TwinState(faults or TwinFaults())
        self._server: _TwinServer | None = None
        self._thread: threading.Thread | None = None
        self._bound_port: int | None = None

    def start(self) -> FakerTwin:
        """Pre-warm the en_US pools, bind and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("faker twin is already running")
        _pools_for(DEFAULT_LOCALE)
        _countries()
        server = _TwinServer((self._host, self._requested_port), self._state)
        self._server = server
        self._bound_port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="faker-twin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and release the port (idempotent)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakerTwin:
        """Start on entering the block."""
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop on leaving the block."""
        self.stop()

    @property
    def port(self) -> int:
        """Bound port (the last one after ``stop``)."""
        if self._bound_port is None:
            raise RuntimeError("faker twin has not been started")
        return self._bound_port

    @property
    def url(self) -> str:
        """Base URL of the API, e.g. ``http://127.0.0.1:54321/api/v2``."""
        return f"http://{self._host}:{self.port}{API_PREFIX}"

    @property
    def faults(self) -> TwinFaults:
        """Faults currently in force."""
        with self._state.lock:
            return self._state.faults

    def set_faults(self, faults: TwinFaults) -> None:
        """Switch faults at runtime (same effect as ``POST /__twin/faults``)."""
        self._state.set_faults(faults)

    def stats(self) -> dict[str, Any]:
        """Same as ``GET /__twin/stats``."""
        return self._state.stats()

    def served(self) -> list[dict[str, str]]:
        """Same as ``GET /__twin/served``."""
        return self._state.served_params()

    def reset(self) -> None:
        """Same as ``POST /__twin/reset``."""
        self._state.reset()
