"""The one client of the Faker API: paging, retries with backoff and jitter, Retry-After, rate, concurrency.

Raw pages live only in memory: nothing here logs, persists or puts a response body into an exception.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
import orjson
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
)
from tenacity.stop import stop_base

from flows.plan import PageRequest
from flows.rawdata.deadline import DeadlineTransport, request_deadline

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({500, 502, 503, 504, 429})
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class PageParser(Protocol[T_co]):
    """Turns a response body into a page (in the fetching thread); raises MalformedPageError to retry."""

    def __call__(self, body: bytes, page: PageRequest, /) -> T_co:
        """Parse `body`, the response to `page`."""
        ...


class FakerApiError(RuntimeError):
    """A page could not be fetched; the message names page, source and cause, never the payload."""


class SourceUnreachable(FakerApiError):
    """Every attempt at a page failed to connect: later pages would fail the same way."""


class MalformedPageError(ValueError):
    """A response body was not a complete Faker API envelope (retried like a transport error)."""


class _Retryable(Exception):
    """One attempt failed in a way another attempt may fix (the problem is a status or a type, no payload)."""

    def __init__(self, problem: str, retry_after: float | None = None, connecting: bool = False) -> None:
        super().__init__(problem)
        self.problem = problem
        self.retry_after = retry_after
        self.connecting = connecting  # the attempt never reached the server


class _StopWhen(stop_base):
    """A tenacity stop condition from a predicate on the retry state."""

    def __init__(self, predicate: Callable[[RetryCallState], bool]) -> None:
        self._predicate = predicate

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._predicate(retry_state)


@dataclass(frozen=True)
class ClientConfig:
    """How the client talks to the API; passed in, never read from the environment here."""

    base_url: str
    timeout_s: float = 15.0
    max_attempts: int = 10
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 15.0
    retry_after_max_s: float = 120.0
    rate_limit_per_s: float = 100.0
    max_in_flight: int = 4
    deadline_at: float | None = None  # epoch seconds (time.time()): no page is waited for beyond it
    # Requests in flight across every extraction this process runs at once (None: max_in_flight each). Set,
    # a batch fetched alone uses what a batch fetched beside it leaves: the last batch of a shard or a run is
    # not fetched at half speed while the lane beside it is empty.
    process_in_flight: int | None = None

    @property
    def window(self) -> int:
        """Requests one extraction keeps outstanding."""
        return self.process_in_flight or self.max_in_flight


_BUDGETS: dict[int, threading.BoundedSemaphore] = {}
_BUDGETS_LOCK = threading.Lock()


def process_budget(size: int) -> threading.BoundedSemaphore:
    """The process-wide request budget of that size (one per size, shared by every client using it)."""
    with _BUDGETS_LOCK:
        return _BUDGETS.setdefault(size, threading.BoundedSemaphore(size))


@dataclass(frozen=True)
class PageQuery:
    """Population filters sent with every page request."""

    locale: str
    birthday_start: date | None = None
    birthday_end: date | None = None

    def params(self, page: PageRequest) -> dict[str, str]:
        """Query parameters of one page request."""
        params = {"_quantity": str(page.quantity), "_seed": str(page.seed), "_locale": self.locale}
        if self.birthday_start:
            params["_birthday_start"] = self.birthday_start.isoformat()
        if self.birthday_end:
            params["_birthday_end"] = self.birthday_end.isoformat()
        return params


@dataclass
class FetchStats:
    """Counters of one extraction (thread-safe updates through `add`)."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    server_errors: int = 0
    malformed: int = 0
    transport_errors: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, **increments: int) -> None:
        """Add to several counters at once."""
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        """Plain counters for logs and manifests."""
        return {
            "requests": self.requests,
            "retries": self.retries,
            "throttled": self.throttled,
            "server_errors": self.server_errors,
            "malformed": self.malformed,
            "transport_errors": self.transport_errors,
        }


class RateLimiter:
    """Spaces requests evenly at `rate` per second and lets a 429 pause every worker at once."""

    def __init__(self, rate_per_s: float) -> None:
        self._interval = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until this caller may send a request."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot, self._paused_until)
            self._next_slot = slot + self._interval
        delay = slot - now
        if delay > 0:
            time.sleep(delay)

    def pause(self, seconds: float) -> None:
        """Hold back all requests for `seconds` (the server asked us to)."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_delay(attempt: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(max, initial * 2**attempt)]."""
    return rng.uniform(0.0, min(max_s, initial_s * (2**attempt)))


def parse_envelope(body: bytes) -> dict[str, Any]:
    """Decode and check a Faker API envelope; raise MalformedPageError (no content) when it is not one."""
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedPageError(f"response body is not valid JSON ({len(body)} bytes)") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("data"), list):
        raise MalformedPageError("response is not a Faker API envelope (no data list)")
    total = envelope.get("total")
    if isinstance(total, int) and total != len(envelope["data"]):
        raise MalformedPageError(f"envelope says total={total} but holds {len(envelope['data'])} records")
    return envelope


def source_name(base_url: str) -> str:
    """The API's host and port as messages name it (no path, no credentials)."""
    parts = urlsplit(base_url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def proxy_for(base_url: str) -> str | None:
    """The proxy the environment names for the API (HTTP(S)_PROXY, NO_PROXY), if any."""
    parts = urlsplit(base_url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def os_error_text(exc: BaseException) -> str | None:
    """The operating system's words for a failed connection ("Connection refused"), if that is what it is."""
    found = re.fullmatch(r"\[Errno -?\d+\] ([A-Za-z][A-Za-z ,'-]{0,80})", str(exc))
    return found.group(1) if found else None


def default_parser(body: bytes, page: PageRequest) -> dict[str, Any]:
    """Parse a page into its envelope dict."""
    return parse_envelope(body)


class FakerApiClient:
    """Pages through /persons; one instance per extraction, shared by its worker threads."""

    def __init__(self, config: ClientConfig, stats: FetchStats | None = None, rng_seed: int | None = None):
        self.config = config
        self.stats = stats or FetchStats()
        self._limiter = RateLimiter(config.rate_limit_per_s)
        self._rng = random.Random(rng_seed)
        self._cancelled = threading.Event()
        self._never_connected = True  # until a request reaches the server: it is unreachable if it never does
        self._source = source_name(config.base_url)
        limits = httpx.Limits(max_connections=config.window, max_keepalive_connections=config.window)
        self._http = httpx.Client(
            base_url=config.base_url.rstrip("/"),
            timeout=config.timeout_s,
            # Each request as a whole ends by its deadline (flows.rawdata.deadline); the proxy, if the
            # environment names one for the API, is the transport's, so it is bounded the same way.
            transport=DeadlineTransport(limits, proxy_for(config.base_url)),
            trust_env=False,
            headers={"Accept": "application/json", "User-Agent": "persons-pipeline/0.1"},
        )

    def __enter__(self) -> FakerApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections."""
        self._http.close()

    def _fetch_in_budget(self, page: PageRequest, query: PageQuery, parse: PageParser[T]) -> T:
        with process_budget(self.config.window):
            return self.fetch_page(page, query, parse)

    def fetch_page(
        self,
        page: PageRequest,
        query: PageQuery,
        parse: PageParser[T] = default_parser,  # type: ignore[assignment]
    ) -> T:
        """Fetch and parse one page, retrying transient failures (a body `parse` rejects as malformed is one);
        raise FakerApiError when attempts or the run's time run out."""
        params = query.params(page)
        retrying = Retrying(
            stop=stop_any(stop_after_attempt(self.config.max_attempts), _StopWhen(self._past_deadline)),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            before=self._count_attempt,
            sleep=self._pause,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(page, params, parse)
        except RetryError as exc:
            raise self._gave_up(page, exc.last_attempt) from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _gave_up(self, page: PageRequest, state: Any) -> FakerApiError:
        """Why a page could not be fetched: the page, the source, the attempts and the last cause."""
        problem = state.exception()
        last = problem.problem if isinstance(problem, _Retryable) else type(problem).__name__
        where = f"page {page.number} (_seed={page.seed}) of {self._source}"
        if self._deadline_reached(0.0) or state.attempt_number < self.config.max_attempts:
            return FakerApiError(
                f"{where} not fetched before the run deadline (PERSONS_RUN_DEADLINE_S) after "
                f"{state.attempt_number} attempts; last problem: {last}"
            )
        if self._never_connected:
            return SourceUnreachable(
                f"{where}: the source is unreachable, {self.config.max_attempts} attempts failed; "
                f"last problem: {last}"
            )
        attempts = self.config.max_attempts
        return FakerApiError(f"{where} failed after {attempts} attempts; last problem: {last}")

    def _attempt(self, page: PageRequest, params: dict[str, str], parse: PageParser[T]) -> T:
        """One request; _Retryable for what another attempt may fix, FakerApiError for what it cannot."""
        if self._cancelled.is_set():
            raise FakerApiError(f"page {page.number} (_seed={page.seed}) abandoned: another page failed")
        self._limiter.acquire()
        if self._deadline_reached(0.0):
            raise _Retryable("the run deadline passed while waiting to send")
        self.stats.add(requests=1)
        try:
            with request_deadline(self._request_deadline()):
                response = self._http.get("/persons", params=params)
        except httpx.TransportError as exc:
            self.stats.add(transport_errors=1)
            connecting = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            raise _Retryable(self._transport_problem(exc), connecting=connecting) from None
        self._never_connected = False
        status = response.status_code
        if status == 200:
            try:
                return parse(response.content, page)
            except MalformedPageError as exc:
                self.stats.add(malformed=1)
                raise _Retryable(str(exc)) from None
        if status == 429:
            self.stats.add(throttled=1)
            wait = parse_retry_after(response.headers.get("Retry-After"))
            shown = f" (Retry-After {wait:.0f} s)" if wait is not None else ""
            raise _Retryable(f"HTTP 429{shown}", retry_after=wait)
        if status in RETRYABLE_STATUS:
            self.stats.add(server_errors=1)
            raise _Retryable(f"HTTP {status}")
        raise FakerApiError(f"page {page.number} (_seed={page.seed}) refused with HTTP {status}")

    def _request_deadline(self) -> float:
        """When the request must be over (time.monotonic()): its own time, cut to the run's deadline."""
        at = time.monotonic() + self.config.timeout_s
        if self.config.deadline_at is not None:
            at = min(at, time.monotonic() + max(0.0, self.config.deadline_at - time.time()))
        return at

    def _transport_problem(self, exc: httpx.TransportError) -> str:
        """What went wrong on the way, in words (an OS error's own text at most; never a payload)."""
        if isinstance(exc, httpx.TimeoutException) and self._deadline_reached(0.0):
            return "the run deadline (PERSONS_RUN_DEADLINE_S) passed during the request"
        if isinstance(exc, httpx.ConnectTimeout):
            return f"no connection within {self.config.timeout_s:g} s"
        if isinstance(exc, httpx.ConnectError):
            return f"cannot connect ({os_error_text(exc) or type(exc).__name__})"
        if isinstance(exc, httpx.TimeoutException):
            return (
                f"no complete answer within {self.config.timeout_s:g} s "
                "(PERSONS_REQUEST_TIMEOUT_S, or the run deadline)"
            )
        if isinstance(exc, httpx.RemoteProtocolError):
            return f"the connection closed mid-answer ({type(exc).__name__})"
        return type(exc).__name__

    def _pause(self, seconds: float) -> None:
        """Wait between attempts; a page that failed for good ends the others' waits at once."""
        self._cancelled.wait(seconds)

    def _count_attempt(self, state: RetryCallState) -> None:
        if state.attempt_number > 1:
            self.stats.add(retries=1)

    def _wait(self, state: RetryCallState) -> float:
        """Retry-After as the server asked (pausing every worker of the client), else full-jitter backoff."""
        problem = state.outcome.exception() if state.outcome else None
        retry_after = problem.retry_after if isinstance(problem, _Retryable) else None
        if retry_after is None:
            return backoff_delay(
                state.attempt_number - 1, self.config.backoff_initial_s, self.config.backoff_max_s, self._rng
            )
        wait = min(retry_after, self.config.retry_after_max_s) + self._rng.uniform(0, 0.05)
        if not self._deadline_reached(wait):
            self._limiter.pause(wait)
        return wait

    def _past_deadline(self, state: RetryCallState) -> bool:
        """Stop retrying when the next wait would end after the run's deadline."""
        return self._deadline_reached(state.upcoming_sleep)

    def _deadline_reached(self, after_s: float) -> bool:
        deadline = self.config.deadline_at
        return deadline is not None and time.time() + after_s >= deadline

    def iter_pages(
        self,
        pages: Iterable[PageRequest],
        query: PageQuery,
        parse: PageParser[T] = default_parser,  # type: ignore[assignment]
    ) -> Iterator[tuple[PageRequest, T]]:
        """Yield (page, envelope) in page order with at most max_in_flight requests outstanding (or, with a
        process budget, as many as the process's other extractions leave of it)."""
        window: deque[tuple[PageRequest, Future[T]]] = deque()
        size = self.config.window
        fetch = self.fetch_page if self.config.process_in_flight is None else self._fetch_in_budget
        with ThreadPoolExecutor(size, thread_name_prefix="faker-fetch") as pool:
            try:
                for page in pages:
                    window.append((page, pool.submit(fetch, page, query, parse)))
                    if len(window) >= size:
                        done_page, future = window.popleft()
                        yield done_page, future.result()
                while window:
                    done_page, future = window.popleft()
                    yield done_page, future.result()
            except BaseException:
                self._cancelled.set()  # a page failed for good: stop the others' retries promptly
                raise
            finally:
                for _, future in window:
                    future.cancel()
