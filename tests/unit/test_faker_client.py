"""The Faker API client against the real twin over HTTP: retries, Retry-After, truncation, rate, order."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from faker_twin import FakerTwin, TwinFaults

from flows.plan import PageRequest
from flows.rawdata.client import (
    ClientConfig,
    FakerApiClient,
    FakerApiError,
    MalformedPageError,
    PageQuery,
    SourceUnreachable,
    backoff_delay,
    parse_envelope,
    parse_retry_after,
)
from tests.conftest import free_port
from tests.receivers import TrickleServer

QUERY = PageQuery(locale="en_US")


@pytest.fixture
def twin() -> Iterator[FakerTwin]:
    with FakerTwin() as server:
        yield server


def client_for(url: str, **overrides: object) -> FakerApiClient:
    config = {"base_url": url, "backoff_initial_s": 0.01, "backoff_max_s": 0.05, "rate_limit_per_s": 0.0}
    config.update(overrides)
    return FakerApiClient(ClientConfig(**config), rng_seed=1)  # type: ignore[arg-type]


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=7), usegmt=True), now) == pytest.approx(
        7
    )
    assert parse_retry_after(format_datetime(now - timedelta(seconds=7), usegmt=True), now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


def test_backoff_is_jittered_and_capped() -> None:
    rng = random.Random(0)
    delays = [backoff_delay(attempt, 0.5, 4.0, rng) for attempt in range(10) for _ in range(20)]
    assert all(0 <= delay <= 4.0 for delay in delays)
    assert len(set(delays)) > 100


def test_malformed_bodies_are_described_without_their_content() -> None:
    secret_body = b'{"data": [{"firstname": "Zebedee", "email": "zeb'
    with pytest.raises(MalformedPageError) as bad:
        parse_envelope(secret_body)
    assert "Zebedee" not in str(bad.value) and "zeb" not in str(bad.value)
    with pytest.raises(MalformedPageError, match="no data list"):
        parse_envelope(b'{"status": "OK"}')
    with pytest.raises(MalformedPageError, match="total=3"):
        parse_envelope(b'{"total": 3, "data": []}')


def test_pages_come_back_in_order_with_the_requested_quantity(twin: FakerTwin) -> None:
    pages = [PageRequest(number=n, seed=100 + n, quantity=10 + n) for n in range(9)]
    with client_for(twin.url, max_in_flight=3) as client:
        fetched = list(client.iter_pages(pages, QUERY))
    assert [page.number for page, _ in fetched] == list(range(9))
    assert [len(envelope["data"]) for _, envelope in fetched] == [10 + n for n in range(9)]
    assert [params["_seed"] for params in twin.served()] != []
    assert {params["_locale"] for params in twin.served()} == {"en_US"}


def test_server_errors_and_truncated_bodies_are_retried(twin: FakerTwin) -> None:
    twin.set_faults(TwinFaults(error_rate=0.4, truncate_rate=0.3))
    pages = [PageRequest(number=n, seed=n, quantity=50) for n in range(10)]
    with client_for(twin.url) as client:
        fetched = list(client.iter_pages(pages, QUERY))
        stats = client.stats.as_dict()
    assert len(fetched) == 10
    assert stats["server_errors"] > 0 and stats["malformed"] > 0
    assert stats["requests"] == stats["retries"] + 10


def test_429_pauses_for_retry_after(twin: FakerTwin) -> None:
    twin.set_faults(TwinFaults(rate_limit_every=2, retry_after_s=1))
    started = time.monotonic()
    with client_for(twin.url, max_in_flight=1) as client:
        list(client.iter_pages([PageRequest(0, 1, 5), PageRequest(1, 2, 5)], QUERY))
        assert client.stats.throttled == 1
    assert time.monotonic() - started >= 1.0


def test_client_side_rate_limit_spaces_requests(twin: FakerTwin) -> None:
    started = time.monotonic()
    with client_for(twin.url, rate_limit_per_s=10.0, max_in_flight=4) as client:
        list(client.iter_pages([PageRequest(n, n, 1) for n in range(6)], QUERY))
    assert time.monotonic() - started >= 0.5  # 6 requests at 10/s: the last starts >= 0.5 s after the first


def test_a_refused_request_is_not_retried(twin: FakerTwin) -> None:
    with client_for(twin.url) as client, pytest.raises(FakerApiError, match="HTTP 400"):
        client.fetch_page(PageRequest(number=0, seed=1, quantity=0), QUERY)
    assert twin.stats()["persons_requests"] == 1


def test_attempts_run_out_with_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/api/v2"
    with client_for(url, max_attempts=3) as client, pytest.raises(FakerApiError) as failed:
        client.fetch_page(PageRequest(number=4, seed=99, quantity=5), QUERY)
    assert "page 4" in str(failed.value) and "3 attempts" in str(failed.value)
    # The source by host and port, and the cause in words; later pages need not try (SourceUnreachable).
    assert isinstance(failed.value, SourceUnreachable)
    assert (
        f"of http://127.0.0.1:{url.split(':')[2].split('/', maxsplit=1)[0]}: the source is unreachable"
        in str(failed.value)
    )
    assert "cannot connect (Connection refused)" in str(failed.value)


def test_filters_are_sent(twin: FakerTwin) -> None:
    query = PageQuery(locale="de_DE", birthday_start=datetime(1980, 1, 1).date(), birthday_end=None)
    with client_for(twin.url) as client:
        envelope = client.fetch_page(PageRequest(number=0, seed=5, quantity=3), query)
    assert envelope["locale"] == "de_DE"
    assert twin.served()[0] == {
        "_quantity": "3",
        "_seed": "5",
        "_locale": "de_DE",
        "_birthday_start": "1980-01-01",
    }
    assert all(person["birthday"] >= "1980-01-01" for person in envelope["data"])


def test_retry_after_beyond_the_run_deadline_fails_the_page_at_once(twin: FakerTwin) -> None:
    twin.set_faults(TwinFaults(rate_limit_every=1, retry_after_s=100))  # every request: wait 100 s
    started = time.monotonic()
    deadline = time.time() + 3
    with (
        client_for(twin.url, deadline_at=deadline, retry_after_max_s=120) as client,
        pytest.raises(FakerApiError) as failed,
    ):
        client.fetch_page(PageRequest(number=7, seed=70, quantity=5), QUERY)
    assert time.monotonic() - started < 3  # it did not wait 100 s, nor until the deadline
    message = str(failed.value)
    assert "page 7" in message and "deadline" in message and "HTTP 429 (Retry-After 100 s)" in message


def test_backoff_stops_at_the_run_deadline() -> None:
    url = f"http://127.0.0.1:{free_port()}/api/v2"  # nobody listens: every attempt fails
    started = time.monotonic()
    with (
        client_for(
            url, max_attempts=50, backoff_initial_s=0.2, backoff_max_s=0.4, deadline_at=time.time() + 1.5
        ) as client,
        pytest.raises(
            FakerApiError,
            match=r"page 2 .*deadline.*(cannot connect \(Connection refused\)|deadline .* passed during)",
        ),
    ):
        client.fetch_page(PageRequest(number=2, seed=9, quantity=5), QUERY)
    assert time.monotonic() - started < 4


def test_a_body_that_trickles_in_ends_at_the_request_deadline() -> None:
    with (
        TrickleServer(interval_s=0.1) as source,
        client_for(source.url, timeout_s=1.0, max_attempts=2) as client,
    ):
        started = time.monotonic()
        with pytest.raises(FakerApiError, match=r"no complete answer within 1 s") as failed:
            client.fetch_page(PageRequest(number=0, seed=1, quantity=5), QUERY)
        took = time.monotonic() - started
    # Two attempts of at most 1 s each (and a short backoff), although every read got a byte in 0.1 s.
    assert took < 3.5, took
    assert "2 attempts" in str(failed.value) and source.requests == 2


def test_the_run_deadline_interrupts_a_request_in_flight() -> None:
    with TrickleServer(interval_s=0.1) as source:
        deadline = time.time() + 1.0
        with (
            client_for(source.url, timeout_s=60.0, deadline_at=deadline) as client,
            pytest.raises(FakerApiError, match="not fetched before the run deadline"),
        ):
            client.fetch_page(PageRequest(number=0, seed=1, quantity=5), QUERY)
        assert time.time() - deadline < 1.0  # cut at the run's deadline, not after the request's 60 s
