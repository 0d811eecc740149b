"""Monitoring and alerts for real: two runs write `monitoring.*`, and the automations made from
deployments/automations/*.yaml fire on the session's Prefect server, calling a webhook receiver on
127.0.0.1 - a failed run, threshold breaches, and the proactive freshness check (its `within` shortened)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from faker_twin import FakerTwin, TwinFaults

from deployments.alerting import delete_automations, deploy_automations
from flows.gate.validation import load_suite_definition
from flows.monitoring.prefect_events import warehouse_resource
from flows.settings import OFFLINE_DEMO_SECRET, get_settings
from tests.conftest import PrefectServer
from tests.integration.conftest import REFERENCE_DATE
from tests.leakscan import Needles, scan
from tests.oracle import expected_from_served
from tests.receivers import JsonReceiver

SCRIPT = Path(sys.executable).parent / "persons-pipeline"
FLOW_RUN_URL = re.compile(r"/runs/flow-run/([0-9a-f-]{36})")
FRESHNESS_WITHIN_S = 10  # Prefect's smallest `within` for a proactive trigger
NOTIFICATION_TIMEOUT_S = 90


@dataclass
class Monitored:
    """Two runs on one DuckDB warehouse, with the automations listening."""

    data_dir: Path
    runs: list[Any]
    run_ids: list[str]
    notifications: list[dict[str, Any]]
    served_records: list[dict[str, Any]] = field(default_factory=list)
    api_url: str = ""

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.data_dir / "warehouse.duckdb"), read_only=True) as connection:
            return connection.execute(sql, params or []).fetchall()

    def wait_for(self, automation: str, **fields: Any) -> dict[str, Any]:
        """The first notification of `automation` whose fields match, waiting for it to arrive."""
        deadline = time.monotonic() + NOTIFICATION_TIMEOUT_S
        while time.monotonic() < deadline:
            for body in list(self.notifications):
                if body.get("automation") == automation and all(body.get(k) == v for k, v in fields.items()):
                    return body
            time.sleep(0.5)
        raise AssertionError(f"no {automation} notification with {fields}; got {self.notifications}")


@pytest.fixture(scope="module")
def monitored(prefect_client: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    from flows.run.pipeline import persons_pipeline

    with JsonReceiver() as receiver:
        url = f"{receiver.url}/hooks/persons"
        names = deploy_automations(url, "persons-alerts-test", within_s=FRESHNESS_WITHIN_S)
        data_dir = tmp_path_factory.mktemp("monitoring") / "data"
        patch = pytest.MonkeyPatch()
        patch.setenv("PERSONS_RATE_LIMIT_PER_S", "0")
        patch.setenv("PERSONS_ALERT_WEBHOOK_URL", f"{receiver.url}/hooks/in-process")  # the flow's own hook
        patch.setenv("PERSONS_MONITOR_MAX_QUARANTINE_RATE", "0.01")  # the bad records below breach it
        # not under test here (the twin's draw decides)
        patch.setenv("PERSONS_MONITOR_MAX_DUPLICATE_RATE", "0.5")
        get_settings.cache_clear()
        records: list[dict[str, Any]] = []
        runs = []
        try:
            with FakerTwin() as twin:
                # 1: completes; bad records (quarantined) and unknown fields (schema drift) breach thresholds.
                faults = TwinFaults(bad_record_rate=0.05, extra_fields=True)
                twin.set_faults(faults)
                runs.append(_run(persons_pipeline, twin.url, data_dir, seed=501))
                records += expected_from_served(
                    twin.served(), faults, REFERENCE_DATE, OFFLINE_DEMO_SECRET.encode()
                ).raw_records
                # 2: the gate rejects its batch (emails in the country field): a failed run, nothing merged,
                # and with a freshness threshold of ~1 s its check finds the last merge too old.
                twin.reset()
                faults = TwinFaults(pii_country_rate=0.05)
                twin.set_faults(faults)
                patch.setenv("PERSONS_MONITOR_FRESHNESS_HOURS", "0.0003")
                get_settings.cache_clear()
                time.sleep(1.5)
                runs.append(_run(persons_pipeline, twin.url, data_dir, seed=502, total=1000))
                records += expected_from_served(
                    twin.served(), faults, REFERENCE_DATE, OFFLINE_DEMO_SECRET.encode()
                ).raw_records
            yield Monitored(
                data_dir,
                runs,
                [str(run.state_details.flow_run_id) for run in runs],
                receiver.events,
                records,
                prefect_client.api_url,
            )
        finally:
            delete_automations(names)
            patch.undo()
            get_settings.cache_clear()


def _run(flow: Any, api_url: str, data_dir: Path, seed: int, total: int = 2000) -> Any:
    return flow(
        api_url=api_url,
        data_dir=str(data_dir),
        total=total,
        page_size=500,
        pages_per_batch=2,
        seed=seed,
        reference_date=REFERENCE_DATE,
        return_state=True,
    )


def test_two_runs_leave_their_metrics_and_the_trend_view_over_them(monitored: Monitored) -> None:
    first, second = monitored.runs
    first_id, second_id = monitored.run_ids
    assert first.is_completed(), first.message
    assert second.is_failed()
    assert monitored.query("select distinct run_id from monitoring.metrics order by 1") == sorted(
        [(first_id,), (second_id,)]
    )
    # rows per layer and batch: what landing holds for the batch
    landed = monitored.query(
        "select m.batch_id, m.metric_value, b.persons from monitoring.metrics m join landing.batches b "
        "on m.run_id = b.run_id and m.batch_id = b.batch_id "
        "where m.metric = 'layer_rows' and m.subject = 'landing.persons' and m.run_id = ?",
        [first_id],
    )
    assert len(landed) == 2 and all(value == persons for _, value, persons in landed)
    # quarantine per reason: the records landing.quarantined_persons holds, and their share
    recorded = dict(
        monitored.query(
            "select subject, sum(metric_value) from monitoring.metrics where run_id = ? "
            "and batch_id is not null and metric = 'quarantined_records' group by subject",
            [first_id],
        )
    )
    actual = dict(
        monitored.query(
            "select quarantine_reason, count(*) from landing.quarantined_persons where run_id = ? group by 1",
            [first_id],
        )
    )
    assert recorded == {reason: float(count) for reason, count in actual.items()} and recorded
    # schema drift by field name; null and duplicate rates of the kept columns
    drift = monitored.query(
        "select distinct subject from monitoring.metrics "
        "where run_id = ? and metric = 'unknown_field_records'",
        [first_id],
    )
    assert {name for (name,) in drift} == {"middlename", "ssn", "address.county"}
    rates = monitored.query(
        "select metric, subject, max(metric_value) from monitoring.metrics where run_id = ? "
        "and metric in ('null_rate', 'duplicate_value_rate') group by 1, 2",
        [first_id],
    )
    by_column = {(metric, subject): value for metric, subject, value in rates}
    assert by_column[("null_rate", "country")] == 0.0
    assert by_column[("duplicate_value_rate", "person_key")] == 0.0
    assert by_column[("duplicate_value_rate", "gender")] > 0.9  # few values, many persons
    # each expectation's verdict per batch; the second run's failure named with its unexpected count
    suite = len(load_suite_definition()["expectations"])
    verdicts = monitored.query(
        "select run_id, subject, metric_value from monitoring.metrics where metric = 'expectation_success'"
    )
    assert len([v for v in verdicts if v[0] == first_id]) == 2 * suite
    assert all(value == 1.0 for run_id, _, value in verdicts if run_id == first_id)
    failed = monitored.query(
        "select s.subject, u.metric_value from monitoring.metrics s join monitoring.metrics u "
        "on s.run_id = u.run_id and s.batch_id = u.batch_id and s.subject = u.subject "
        "where s.metric = 'expectation_success' and s.metric_value = 0 "
        "and u.metric = 'expectation_unexpected' and s.run_id = ?",
        [second_id],
    )
    assert ("country_holds_no_email_address" in {name for name, _ in failed}) and all(
        n > 0 for _, n in failed
    )

    trend = monitored.query(
        "select run_id, batches_merged, batches_rejected, published_persons, staging_rows, quarantine_rate, "
        "schema_drift_fields, expectations_failed, hours_since_last_merge, smallest_class, breaches, "
        "published_persons_change from monitoring.run_trend order by measured_at"
    )
    assert [row[0] for row in trend] == [first_id, second_id]
    (_, merged, rejected, published, staging, quarantine_rate, drift_fields, failed_count, hours, smallest,
     breaches, change) = trend[0]  # fmt: skip
    report = json.loads((monitored.data_dir / "reports" / first_id / "report.json").read_text())
    assert (merged, rejected, published, staging) == (2, 0, report["total_persons"], report["total_persons"])
    received = sum(b["extracted"] for b in _manifest(monitored.data_dir, first_id)["batches"])
    assert quarantine_rate == pytest.approx(report["quarantined"] / received)
    assert (drift_fields, failed_count, breaches, change) == (3, 0, 2, None)
    assert hours < 0.1 and smallest >= report["k_anonymity"]["k"]
    second_row = trend[1]
    assert second_row[1:3] == (0, 1) and second_row[7] > 0 and second_row[11] == 0


def _manifest(data_dir: Path, run_id: str) -> dict[str, Any]:
    (path,) = (data_dir / "landing").rglob(f"{run_id}/manifest.json")
    return json.loads(path.read_text())


def test_breaches_are_recorded_with_their_thresholds(monitored: Monitored) -> None:
    first_id, second_id = monitored.run_ids
    breaches = monitored.query(
        "select run_id, metric, subject, metric_value, threshold from monitoring.breaches"
    )
    by_run = {(run_id, metric): (value, threshold) for run_id, metric, _, value, threshold in breaches}
    assert set(by_run) == {
        (first_id, "quarantine_rate"),
        (first_id, "schema_drift_fields"),
        (second_id, "hours_since_last_merge"),
    }
    assert by_run[(first_id, "quarantine_rate")][1] == 0.01
    assert by_run[(first_id, "schema_drift_fields")] == (3.0, 0.0)
    assert by_run[(second_id, "hours_since_last_merge")][0] > 0.0003


def test_a_failed_run_notifies_through_its_automation_once(monitored: Monitored) -> None:
    body = monitored.wait_for("persons-run-failed", flow_run_id=monitored.run_ids[1])
    assert body["state"] == "Failed" and body["flow"] == "persons-pipeline"
    assert body["event"] == "prefect.flow-run.Failed"
    assert "country_holds_no_email_address" in body["message"]  # the state's reason: what was not published
    assert not [b for b in monitored.notifications if b.get("flow_run_id") == monitored.run_ids[0]]
    # The flow's failure hook has a webhook too, but leaves the alert to the automation: one alert, not two.
    assert [b for b in monitored.notifications if b.get("flow_run_id") == monitored.run_ids[1]] == [body]


def test_a_crashed_run_notifies_through_the_automation_once(monitored: Monitored, tmp_path: Path) -> None:
    """SIGTERM in the middle of a run: Prefect reports it Crashed, the automation's Crashed branch alerts,
    and the flow's own hook (it has a webhook) leaves the alert to it."""
    with FakerTwin() as twin:
        command = [
            str(SCRIPT),
            "run",
            "--verbose",
            "--api-url",
            twin.url,
            "--total",
            "300000",
            "--seed",
            "503",
        ]
        command += ["--data-dir", str(tmp_path / "data"), "--reference-date", str(REFERENCE_DATE)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert process.stderr is not None
        flow_run_id, seen = None, []
        for line in process.stderr:
            seen.append(line)
            found = FLOW_RUN_URL.search(line)
            flow_run_id = found.group(1) if found else flow_run_id
            if "event=batch_landed" in line:  # a batch is in the warehouse's hands
                process.send_signal(signal.SIGTERM)
                break
        process.communicate(timeout=120)
    assert flow_run_id and process.returncode != 0, "".join(seen[-20:])
    body = monitored.wait_for("persons-run-failed", flow_run_id=flow_run_id)
    assert body["state"] == "Crashed" and body["event"] == "prefect.flow-run.Crashed", (
        body,
        "".join(seen[-20:]),
    )
    assert "termination signal" in body["message"]
    assert [b for b in monitored.notifications if b.get("flow_run_id") == flow_run_id] == [body]


def test_every_merged_batch_is_announced_as_it_is_merged(monitored: Monitored) -> None:
    first_id, second_id = monitored.run_ids
    merged = monitored.query(
        "select batch_id, persons from landing.batches where run_id = ? and status = 'merged'", [first_id]
    )
    assert len(merged) == 2  # 2,000 persons in batches of 2 pages of 500
    deadline = time.monotonic() + NOTIFICATION_TIMEOUT_S
    announced: list[dict[str, Any]] = []
    first: list[tuple[str, int]] = []
    while len(first) < len(merged) and time.monotonic() < deadline:  # other runs here announce theirs too
        time.sleep(0.5)  # the server persists events in batches
        announced = [event["payload"] for event in _events(monitored.api_url, "persons.batch.merged")]
        first = sorted((p["batch_id"], p["persons"]) for p in announced if p["run_id"] == first_id)
    assert first == sorted(merged)  # one event per batch, with the persons it published
    assert not [payload for payload in announced if payload["run_id"] == second_id]  # rejected: none


def _events(api_url: str, name: str) -> list[dict[str, Any]]:
    """The events of a name the server has persisted (its read API, newest first)."""
    response = httpx.post(
        f"{api_url}/events/filter", json={"filter": {"event": {"name": [name]}}, "limit": 50}
    )
    response.raise_for_status()
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def test_a_threshold_breach_notifies_with_run_metric_and_threshold(monitored: Monitored) -> None:
    first_id = monitored.run_ids[0]
    body = monitored.wait_for("persons-threshold-breach", run_id=first_id, metric="quarantine_rate")
    assert body["threshold"] == 0.01 and body["value"] > 0.01 and body["subject"] == "all"
    drift = monitored.wait_for("persons-threshold-breach", run_id=first_id, metric="schema_drift_fields")
    assert (drift["value"], drift["threshold"]) == (3.0, 0)
    location = str(monitored.data_dir.resolve() / "warehouse.duckdb")
    assert body["warehouse_id"] == warehouse_resource("local", location)["prefect.resource.id"]


def test_no_merge_within_the_freshness_window_notifies_proactively(monitored: Monitored) -> None:
    location = str(monitored.data_dir.resolve() / "warehouse.duckdb")
    warehouse_id = warehouse_resource("local", location)["prefect.resource.id"]
    body = monitored.wait_for("persons-freshness", warehouse_id=warehouse_id)
    assert body["last_merge_run_id"] == monitored.run_ids[0]  # the second run merged nothing
    assert body["within_seconds"] == FRESHNESS_WITHIN_S


def test_monitoring_rows_and_notifications_carry_no_personal_value(
    monitored: Monitored, tmp_path: Path
) -> None:
    monitored.wait_for("persons-freshness")  # every kind of notification has arrived by now
    folder = tmp_path / "scanned"
    folder.mkdir()
    for table in ("metrics", "breaches", "run_trend"):
        with duckdb.connect(str(monitored.data_dir / "warehouse.duckdb"), read_only=True) as connection:
            rows: pa.Table = connection.sql(f"select * from monitoring.{table}").to_arrow_table()
        pq.write_table(
            rows.cast(pa.schema([(f.name, pa.string()) for f in rows.schema])), folder / f"{table}.parquet"
        )
    for index, body in enumerate(monitored.notifications):
        (folder / f"notification-{index}.json").write_text(json.dumps(body))
    assert len(list(folder.glob("notification-*.json"))) >= 4
    needles = Needles.from_records(monitored.served_records)
    assert len(needles.substrings) > 1000
    assert scan([folder], needles) == []
