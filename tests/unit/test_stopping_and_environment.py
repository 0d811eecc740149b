"""A stop signal's handling and the environment of child processes, without a run around them."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType

import pytest

from flows.analytics.project import DbtTarget
from flows.analytics.runner import DbtProcess
from flows.runtime import stopping
from flows.runtime.environment import PROXY_VARIABLES, child_environment

SECRETS = {
    "PERSONS_HMAC_SECRET": "k" * 40,
    "SNOWFLAKE_PASSWORD": "pw",
    "AWS_SECRET_ACCESS_KEY": "aws",
    "PERSONS_ALERT_WEBHOOK_URL": "https://hooks.example/T0/secret",
}


def test_the_first_stop_signal_stops_ends_and_chains_once() -> None:
    chained: list[int] = []
    ended: list[str] = []

    def previous(signum: int, frame: FrameType | None) -> None:
        chained.append(signum)

    original = signal.signal(signal.SIGTERM, previous)
    try:
        with stopping.stop_on_signals(), stopping.ended_on_stop(lambda: ended.append("worker")):
            assert not stopping.stop_requested()
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)  # a second one while the run ends: noted, not raised again
            assert stopping.stop_requested() and stopping.stop_signal() is signal.SIGTERM
        assert chained == [signal.SIGTERM] and ended == ["worker"]
        assert signal.getsignal(signal.SIGTERM) is previous  # restored
        with stopping.stop_on_signals():  # the next run in this process starts unstopped
            assert not stopping.stop_requested()
    finally:
        signal.signal(signal.SIGTERM, original)


def test_ctrl_c_stops_with_keyboard_interrupt_where_python_would() -> None:
    original = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), stopping.stop_on_signals():
            os.kill(os.getpid(), signal.SIGINT)
        assert stopping.stop_signal() is signal.SIGINT
    finally:
        signal.signal(signal.SIGINT, original)


def test_what_is_registered_after_the_stop_is_ended_at_once() -> None:
    ended: list[int] = []
    stopping.request_stop(signal.SIGTERM)
    with stopping.ended_on_stop(lambda: ended.append(1)):
        pass
    assert ended == [1]
    with stopping.stop_on_signals():  # resets the process for the next test
        pass


def test_an_error_while_stopping_is_the_stop_even_if_the_signals_exception_was_lost() -> None:
    from prefect.exceptions import TerminationSignal

    from flows.run.context import raise_if_stopped, stop_wins

    with pytest.raises(RuntimeError, match="dbt exited"), stop_wins():  # not stopping: the error itself
        raise RuntimeError("dbt exited")
    raise_if_stopped()  # not stopping: nothing
    stopping.request_stop(signal.SIGTERM)  # as the handler does; its exception is lost (not raised here)
    try:
        with pytest.raises(TerminationSignal), stop_wins():
            raise RuntimeError("dbt exited (code -9)")  # the stop killed it
        with pytest.raises(TerminationSignal):
            raise_if_stopped()
    finally:
        with stopping.stop_on_signals():  # resets the process for the next test
            pass


def test_a_child_gets_what_it_needs_to_run_and_none_of_the_secrets() -> None:
    source = {
        **SECRETS,
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        "HTTPS_PROXY": "http://p:3128",
    }
    plain = child_environment(source=source)
    assert plain == {"PATH": "/usr/bin", "HOME": "/root", "LC_ALL": "C.UTF-8"}
    networked = child_environment(keep=PROXY_VARIABLES, extra={"MALLOC_ARENA_MAX": "2"}, source=source)
    assert networked["HTTPS_PROXY"] == "http://p:3128" and networked["MALLOC_ARENA_MAX"] == "2"
    assert not set(SECRETS) & set(networked)


def test_dbt_gets_its_credentials_only_in_dbts_masked_form(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DBT_PROFILES_DIR", "/elsewhere")
    target = DbtTarget("snowflake", {"type": "snowflake"}, {"DBT_ENV_SECRET_SNOWFLAKE_PASSWORD": "pw"})
    environment = DbtProcess(target, tmp_path, {}, tmp_path).environment()
    assert environment["DBT_ENV_SECRET_SNOWFLAKE_PASSWORD"] == "pw"
    assert environment["DBT_PROFILES_DIR"] == "/elsewhere"
    assert not set(SECRETS) & set(environment)
