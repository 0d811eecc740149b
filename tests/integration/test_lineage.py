"""OpenLineage events of real runs: posted to a receiver on 127.0.0.1 and written to the run's events file."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from faker_twin import FakerTwin, TwinFaults

from flows.settings import OFFLINE_DEMO_SECRET, get_settings
from tests.conftest import free_port
from tests.integration.conftest import REFERENCE_DATE, FlowRun
from tests.leakscan import Needles
from tests.oracle import expected_from_served
from tests.receivers import LineageReceiver

PUBLISHED = ("transform", "analytics", "reporting")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One warehouse for the module's runs (dbt builds its models once)."""
    return tmp_path_factory.mktemp("lineage") / "data"


@pytest.fixture
def receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LineageReceiver]:
    """A receiver on 127.0.0.1 that PERSONS_LINEAGE_URL points at."""
    with LineageReceiver(tmp_path / "received") as server:
        monkeypatch.setenv("PERSONS_LINEAGE_URL", server.url)
        get_settings.cache_clear()
        yield server
    get_settings.cache_clear()


def file_events(run: FlowRun, run_id: str) -> list[dict[str, Any]]:
    """The events of the run's file transport, one JSON event per line."""
    lines = (run.data_dir / "lineage" / f"{run_id}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def by_name(datasets: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(item["namespace"], item["name"]): item for item in datasets}


def row_count(dataset: dict[str, Any]) -> int:
    return int(dataset["outputFacets"]["outputStatistics"]["rowCount"])


def assert_no_personal_value(events: list[dict[str, Any]], twin: FakerTwin, faults: TwinFaults) -> None:
    served = expected_from_served(twin.served(), faults, REFERENCE_DATE, OFFLINE_DEMO_SECRET.encode())
    needles = Needles.from_records(served.raw_records)
    text = json.dumps(events)
    assert not [needle for needle in needles.substrings if needle in text]
    strings: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, str):
            strings.add(value.strip())
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(events)
    assert not strings & needles.values


def test_a_run_posts_start_and_complete_with_its_datasets_and_row_counts(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun], receiver: LineageReceiver, data_dir: Path
) -> None:
    faults = TwinFaults(bad_record_rate=0.05, extra_fields=True)
    twin.set_faults(faults)

    run = run_pipeline(twin.url, data_dir=data_dir, total=2000, page_size=500, pages_per_batch=2, seed=31)

    assert run.state.is_completed(), run.state.message
    run_id = str(run.state.state_details.flow_run_id)
    events = receiver.of_run(run_id)
    assert [event["eventType"] for event in events] == ["START", "COMPLETE"]
    assert set(receiver.paths) == {"/api/v1/lineage"}
    assert file_events(run, run_id) == events  # the file transport holds the same two events
    complete = events[1]
    assert complete["job"]["namespace"] == "persons-local" and complete["job"]["name"] == "persons-pipeline"
    assert complete["run"]["facets"]["processing_engine"]["name"] == "prefect"

    manifest = json.loads(next((data_dir / "landing").rglob(f"{run_id}/manifest.json")).read_text())
    (api,) = complete["inputs"]
    assert (api["namespace"], api["name"]) == (twin.url.rsplit("/api", 1)[0], "/api/v2/persons")
    assert api["inputFacets"]["inputStatistics"]["rowCount"] == manifest["records"]["received"] == 2000

    outputs = by_name(complete["outputs"])
    landing = outputs[("file", str((data_dir / "landing").resolve()))]
    batches = manifest["batches"]
    assert row_count(landing) == sum(batch["persons"] + batch["quarantined"] for batch in batches)
    assert landing["outputFacets"]["outputStatistics"]["fileCount"] == 2 * len(batches) == 4
    warehouse = f"duckdb://{(data_dir / 'warehouse.duckdb').resolve()}"

    def output(schema: str, table: str) -> dict[str, Any]:
        return outputs[(warehouse, f"warehouse.{schema}.{table}")]

    def count(relation: str) -> int:
        return int(run.query(f"select count(*) from {relation}")[0][0])

    assert row_count(output("landing", "persons")) == count("landing.persons")
    assert row_count(output("landing", "quarantined_persons")) == count("landing.quarantined_persons")
    assert row_count(output("landing", "batches")) == count("landing.batches") == 2
    assert row_count(output("staging", "persons")) == count("staging.persons") == run.report["total_persons"]
    columns = run.query(
        "select column_name from information_schema.columns "
        "where table_schema = 'staging' and table_name = 'persons' order by ordinal_position"
    )
    fields = output("staging", "persons")["facets"]["schema"]["fields"]
    assert [field["name"] for field in fields] == [name for (name,) in columns]
    published = run.query(
        "select table_schema, table_name from information_schema.tables "
        f"where table_schema in {PUBLISHED} order by 1, 2"
    )
    assert len(published) >= 14  # dbt's views and seeds above staging
    for schema, table in published:
        assert row_count(output(schema, table)) == count(f"{schema}.{table}"), (schema, table)
    assert row_count(output("reporting", "rpt_age_groups")) == len(run.report["age_groups"])
    assert_no_personal_value(events, twin, faults)


def test_a_run_that_does_not_publish_every_batch_ends_with_fail_and_its_reason(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun], receiver: LineageReceiver, data_dir: Path
) -> None:
    faults = TwinFaults(pii_country_rate=0.05)  # emails in the country field: the gate rejects the batches
    twin.set_faults(faults)

    run = run_pipeline(twin.url, data_dir=data_dir, total=1000, page_size=500, pages_per_batch=1, seed=32)

    assert run.state.is_failed()
    run_id = str(run.state.state_details.flow_run_id)
    events = receiver.of_run(run_id)
    assert [event["eventType"] for event in events] == ["START", "FAIL"]
    assert file_events(run, run_id) == events
    message = events[1]["run"]["facets"]["errorMessage"]["message"]
    assert message.startswith("PipelineFailed: ") and "rejected by the validation gate" in message
    assert "\n" not in message
    outputs = by_name(events[1]["outputs"])
    warehouse = f"duckdb://{(data_dir / 'warehouse.duckdb').resolve()}"
    statuses = dict(
        run.query("select status, count(*) from landing.batches where run_id = ? group by 1", [run_id])
    )
    assert statuses.get("rejected", 0) >= 1 and sum(statuses.values()) == 2
    assert row_count(outputs[(warehouse, "warehouse.landing.batches")]) == 2
    (merged,) = run.query(
        "select coalesce(sum(persons), 0) from landing.batches where run_id = ? and status = 'merged'",
        [run_id],
    )[0]
    assert row_count(outputs[(warehouse, "warehouse.staging.persons")]) == merged
    # the models were built by the module's first run: this run names them with their columns, uncounted
    fct = outputs[(warehouse, "warehouse.analytics.fct_persons")]
    assert fct["facets"]["schema"]["fields"] and "outputStatistics" not in fct.get("outputFacets", {})
    assert_no_personal_value(events, twin, faults)


def test_a_receiver_that_is_down_never_fails_the_run_and_the_file_keeps_the_events(
    twin: FakerTwin,
    run_pipeline: Callable[..., FlowRun],
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("PERSONS_LINEAGE_URL", f"http://127.0.0.1:{free_port()}")  # nobody listens there
    monkeypatch.setenv("PERSONS_LINEAGE_TIMEOUT_S", "1")
    get_settings.cache_clear()

    run = run_pipeline(twin.url, data_dir=data_dir, total=500, page_size=500, pages_per_batch=1, seed=33)

    assert run.state.is_completed(), run.state.message
    run_id = str(run.state.state_details.flow_run_id)
    assert [event["eventType"] for event in file_events(run, run_id)] == ["START", "COMPLETE"]
    messages = [record.getMessage() for record in caplog.records]
    lines = [message for message in messages if "event=lineage_not_sent" in message]
    assert len(lines) == 2  # one line per event, no retries
    assert all("transport=http" in line and "ConnectionError" in line for line in lines)
    emitted = [message for message in messages if "event=lineage_emitted" in message]
    assert len(emitted) == 2 and all("sent_to=file " in line for line in emitted)
    assert not [record for record in caplog.records if record.name.startswith("urllib3")]
    assert "event_type=START" in lines[0] and "event_type=COMPLETE" in lines[1]
