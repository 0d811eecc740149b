"""A total deadline per request: connect, send and every read of the body count against one clock.

httpx's timeouts apply to each network operation, so a server that answers 200 and then sends one byte a
second is never timed out (a known gap: encode/httpx#1450). Here every socket operation of a request is given
at most the time left until the request's deadline, and fails with a timeout once none is left, so a request
ends at its deadline whatever the server does. The deadline is set per thread by `request_deadline` around a
request: the fetching threads each make their requests synchronously, and a pooled connection's reads happen
in the thread whose request uses it.
"""

from __future__ import annotations

import threading
import time
import typing
from collections.abc import Iterator
from contextlib import contextmanager

import httpcore
import httpx

_local = threading.local()


@contextmanager
def request_deadline(at: float) -> Iterator[None]:
    """Every socket operation in the block, in this thread, ends by `at` (time.monotonic())."""
    previous = getattr(_local, "at", None)
    _local.at = at
    try:
        yield
    finally:
        _local.at = previous


def _bounded(timeout: float | None, expired: type[httpcore.TimeoutException]) -> float | None:
    """The operation's own timeout, cut to the time left before the thread's deadline."""
    at: float | None = getattr(_local, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise expired("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the deadline of the request using it."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: typing.Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own synchronous backend, with every connection bounded by the request's deadline."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, bounded, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport on a connection pool with the deadline backend (and the proxy, if one applies).

    httpx builds its pool without a way to pass a network backend, so the pool is built here, with the same
    limits; `tests/unit/test_faker_client.py` proves the deadline holds, so an httpx change that bypassed it
    fails there.
    """

    def __init__(self, limits: httpx.Limits, proxy_url: str | None = None) -> None:
        super().__init__(limits=limits)
        self._pool = httpcore.ConnectionPool(  # type: ignore[assignment]
            ssl_context=httpx.create_ssl_context(),
            proxy=httpcore.Proxy(proxy_url) if proxy_url else None,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=DeadlineBackend(),
        )
