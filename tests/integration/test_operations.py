"""Operating the pipeline: incremental daily loads from the high-watermark, concurrent runs on one DuckDB
file, and failure alerts to a webhook (a real HTTP receiver on 127.0.0.1)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from faker_twin import FakerTwin, TwinFaults

from flows.operations.schedules import persons_daily
from flows.settings import OFFLINE_DEMO_SECRET, get_settings
from tests.integration.conftest import REFERENCE_DATE, FlowRun
from tests.leakscan import Needles
from tests.oracle import expected_from_served
from tests.receivers import JsonReceiver

SCRIPT = Path(sys.executable).parent / "persons-pipeline"


def query(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def test_daily_runs_continue_from_the_high_watermark_and_catch_up(twin: FakerTwin, tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    common = {"persons_per_day": 500, "api_url": twin.url, "data_dir": data_dir}

    first = persons_daily(as_of=date(2026, 3, 2), first_day=date(2026, 3, 1), **common)
    assert first["loaded"] == ["daily:2026-03-01", "daily:2026-03-02"]
    requests = twin.stats()["persons_requests"]

    again = persons_daily(as_of=date(2026, 3, 2), **common)
    assert again["loaded"] == []  # nothing new: no request, no change
    assert twin.stats()["persons_requests"] == requests

    later = persons_daily(as_of=date(2026, 3, 5), **common)  # 3 and 4 March were missed: caught up now
    assert later["loaded"] == ["daily:2026-03-03", "daily:2026-03-04", "daily:2026-03-05"]
    assert later["high_watermark"] == date(2026, 3, 5)
    windows = query(
        tmp_path / "data", "select window_key from landing.load_windows where status = 'completed'"
    )
    assert sorted(key for (key,) in windows) == [f"daily:2026-03-0{day}" for day in range(1, 6)]
    assert query(tmp_path / "data", "select count(*) from staging.persons") == [(2500,)]
    # one reference date for the whole published state: each day restated the days before it
    ages = query(tmp_path / "data", "select distinct age_reference_date from staging.persons order by 1")
    assert [value for (value,) in ages] == [date(2026, 3, 5)]


def test_two_runs_at_once_on_one_duckdb_file_both_succeed(twin: FakerTwin, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    runs = [
        subprocess.Popen(
            [
                str(SCRIPT),
                "run",
                "--api-url",
                twin.url,
                "--total",
                "3000",
                "--pages-per-batch",
                "1",
                "--seed",
                str(seed),
                "--data-dir",
                str(data_dir),
                "--reference-date",
                "2026-06-15",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    outputs = [run.communicate(timeout=600) for run in runs]
    # the end of each run's output holds its one-line verdict
    assert [run.returncode for run in runs] == [0, 0], "\n----\n".join(err[-3000:] for _, err in outputs)
    assert query(data_dir, "select count(*) from staging.persons") == [(6000,)]
    assert query(data_dir, "select distinct status from landing.batches") == [("merged",)]


def test_two_runs_creating_the_warehouse_limit_at_the_same_moment_both_get_it(tmp_path: Path) -> None:
    """Prefect's upsert reads, then creates: the other run's create lands in between, this one goes on."""
    from prefect.client.orchestration import get_client

    from flows.run.slots import ensure_limit

    name = f"test-limit-{tmp_path.name}"
    with get_client(sync_client=True) as client, get_client(sync_client=True) as other:
        read = client.read_global_concurrency_limit_by_name

        def read_while_the_other_run_creates(limit_name: str) -> Any:
            try:
                return read(limit_name)  # not there yet ...
            finally:
                other.upsert_global_concurrency_limit_by_name(limit_name, 1)  # ... and now it is

        client.read_global_concurrency_limit_by_name = read_while_the_other_run_creates  # type: ignore[method-assign,assignment]
        try:
            ensure_limit(client, name, 1)
            assert other.read_global_concurrency_limit_by_name(name).limit == 1
        finally:
            other.delete_global_concurrency_limit_by_name(name)


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """A local HTTP receiver for alerts; PERSONS_ALERT_WEBHOOK_URL points at it."""
    with JsonReceiver() as receiver:
        monkeypatch.setenv("PERSONS_ALERT_WEBHOOK_URL", f"{receiver.url}/hooks/alerts")
        get_settings.cache_clear()
        yield receiver.events
    get_settings.cache_clear()


def test_a_failed_run_alerts_with_run_step_and_docs_but_no_personal_value(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun], webhook: list[dict[str, Any]]
) -> None:
    faults = TwinFaults(pii_country_rate=0.05)
    twin.set_faults(faults)

    run = run_pipeline(twin.url, total=1000, page_size=500, pages_per_batch=2, seed=77)

    assert run.state.is_failed()
    assert len(webhook) == 1
    alert = webhook[0]
    assert alert["flow"] == "persons-pipeline"
    assert alert["flow_run_id"] == str(run.state.state_details.flow_run_id)
    assert alert["flow_run"] in alert["text"]
    assert "validate-batch-1-of-1" in alert["failed_steps"]  # the step and its batch
    assert alert["data_docs"].endswith("index.html") and Path(alert["data_docs"]).is_file()
    assert "country_holds_no_email_address" in alert["message"]
    served = expected_from_served(twin.served(), faults, REFERENCE_DATE, OFFLINE_DEMO_SECRET.encode())
    needles = Needles.from_records(served.raw_records)
    text = json.dumps(alert)
    assert not [needle for needle in needles.substrings if needle in text]
    assert not [value for value in needles.values if f'"{value}"' in text]


def test_a_successful_run_sends_no_alert(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun], webhook: list[dict[str, Any]]
) -> None:
    run = run_pipeline(twin.url, total=500, page_size=500)
    assert run.state.is_completed()
    assert webhook == []
