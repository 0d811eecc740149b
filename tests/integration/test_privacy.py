"""No raw personal value at rest: every file of the data folder and of Prefect (server and client) scanned."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from faker_twin import FakerTwin, TwinFaults
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from flows.cli import main
from flows.settings import OFFLINE_DEMO_SECRET, get_settings
from tests.conftest import PrefectServer, S3Server
from tests.integration.conftest import REFERENCE_DATE, FlowRun
from tests.leakscan import Needles, cell_sources, scan
from tests.oracle import expected_from_served, person_key
from tests.receivers import LineageReceiver

SECRET = OFFLINE_DEMO_SECRET.encode()


IDENTITY = ("firstname", "lastname", "email", "phone", "birthday")


@pytest.fixture
def lineage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LineageReceiver]:
    """Lineage events go to each run's events file and to this receiver, which keeps the bodies it got."""
    with LineageReceiver(tmp_path / "lineage-received") as receiver:
        monkeypatch.setenv("PERSONS_LINEAGE_URL", receiver.url)
        yield receiver


def test_no_raw_personal_value_reaches_disk_logs_results_or_docs(
    twin: FakerTwin,
    run_pipeline: Callable[..., FlowRun],
    prefect_client: PrefectServer,
    s3_server: S3Server,
    lineage: LineageReceiver,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The person_key secret is a marker stored in (moto's) Secrets Manager: it must not be found either.
    marker = f"leak-marker-secret-{uuid.uuid4().hex}"
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    secret_name = f"persons/leakscan/{uuid.uuid4().hex[:8]}"
    boto3.client("secretsmanager", endpoint_url=s3_server.endpoint_url).create_secret(
        Name=secret_name, SecretString=marker
    )
    monkeypatch.setenv("PERSONS_HMAC_SECRET_AWS_SECRET", secret_name)
    get_settings.cache_clear()
    records = []
    # A run with bad records, unknown fields, both payload shapes and transport faults (retries, logs) ...
    noisy = TwinFaults(
        bad_record_rate=0.2, extra_fields=True, coordinates="mixed", error_rate=0.2, truncate_rate=0.1
    )
    twin.set_faults(noisy)
    first = run_pipeline(twin.url, total=3000, page_size=500, pages_per_batch=3, seed=101)
    assert first.state.is_completed(), first.state.message
    first_expected = expected_from_served(twin.served(), noisy, REFERENCE_DATE, marker.encode())
    records += first_expected.raw_records
    keys = {row[0] for row in first.query("select person_key from staging.persons")}
    assert keys == set(first_expected.persons)  # keyed with the marker from Secrets Manager
    # ... and a run whose batch the gate rejects: emails shifted into the country field by the source.
    twin.reset()
    shifted = TwinFaults(pii_country_rate=0.05)
    twin.set_faults(shifted)
    second = run_pipeline(
        twin.url, data_dir=first.data_dir, total=1000, page_size=500, pages_per_batch=2, seed=102
    )
    assert second.state.is_failed()
    records += expected_from_served(twin.served(), shifted, REFERENCE_DATE, SECRET).raw_records
    # ... and an erasure request: tombstones and the audit row join the scanned warehouse; the request
    # file itself (raw data by nature) lives outside every scanned folder and is never copied.
    published = {key for (key,) in first.query("select person_key from staging.persons")}
    named = [
        record
        for record in records
        if isinstance(record, dict)
        and all(isinstance(record.get(name), str) for name in IDENTITY)
        and person_key(record, marker.encode()) in published
    ][:5]
    request = tmp_path / "erasure-request.jsonl"
    request.write_text("".join(json.dumps({name: r[name] for name in IDENTITY}) + "\n" for r in named))
    assert main(["forget", "--identity-file", str(request), "--data-dir", str(first.data_dir)]) == 0
    warehouse_file = first.data_dir / "warehouse.duckdb"
    assert {
        "duckdb:staging.tombstones.person_key",
        "duckdb:landing.erasures.erasure_id",
        "duckdb:landing.erasure_files.landed_file",  # the files an erasure rewrote: names only
        "duckdb:monitoring.metrics.subject",  # field names, reasons, expectations: scanned like the rest
        "duckdb:monitoring.breaches.metric",
    } <= cell_sources(warehouse_file)
    forgotten = {person_key(record, marker.encode()) for record in named}
    where = {
        finding.how
        for finding in scan([first.data_dir], Needles(substrings=forgotten))
        if finding.how != "bytes" or finding.path != warehouse_file
    }
    assert where == {"duckdb:staging.tombstones.person_key"}  # a forgotten key: only its tombstone

    # What people read besides the files: status and history, and a run's log lines as JSON (the third run).
    outputs = first.data_dir / "command-outputs"
    outputs.mkdir()
    monkeypatch.setenv("PERSONS_LINEAGE_ENABLED", "false")  # the lineage checks below count two runs' events
    get_settings.cache_clear()
    twin.reset()
    twin.set_faults(noisy)
    third = ["run", "--api-url", twin.url, "--data-dir", str(first.data_dir), "--total", "500"]
    third += ["--page-size", "500", "--seed", "103", "--reference-date", str(REFERENCE_DATE)]
    place = ["--data-dir", str(first.data_dir)]
    commands = {
        "run-json-log": [*third, "--log-format", "json"],
        "status-json": ["status", *place, "--json"],
        "history-json": ["history", *place, "--json"],
        "status": ["status", *place],
    }
    for name, command in commands.items():
        assert main(command) == 0
        shown = capsys.readouterr()
        (outputs / f"{name}.txt").write_text(shown.out + shown.err)
    records += expected_from_served(twin.served(), noisy, REFERENCE_DATE, marker.encode()).raw_records
    assert '"event": "batch_merged"' in (outputs / "run-json-log.txt").read_text()

    needles = Needles.from_records(records)
    assert len(needles.substrings) > 5000 and len(needles.values) > 500
    needles.substrings.add(marker)
    assert [event["eventType"] for event in lineage.events] == ["START", "COMPLETE", "START", "FAIL"]
    roots = [first.data_dir, prefect_client.server_home, prefect_client.client_home, lineage.folder]
    findings = scan(roots, needles)

    assert findings == []
    scanned = [path for root in roots for path in root.rglob("*") if path.is_file()]
    suffixes = {path.suffix for path in scanned}
    assert {
        ".parquet",
        ".duckdb",
        ".json",
        ".html",
        ".csv",
        ".md",
        ".db",
        ".log",
        ".msgpack",
        ".jsonl",
        ".png",
        ".svg",
        ".css",
        ".js",
    } <= suffixes  # the scan saw them all (dbt's logs, parse cache, manifests and docs, lineage events too)
    events_files = sorted((first.data_dir / "lineage").glob("*.jsonl"))
    assert len(events_files) == 2 and all(cell_sources(path) == {"jsonl"} for path in events_files)
    assert len(list(lineage.folder.glob("event-*.json"))) == 4  # the bodies as the receiver got them
    assert first.data_dir / "data_docs" / "dbt" / "index.html" in scanned
    assert first.data_dir / "data_docs" / "index.html" in scanned  # the validation index across runs
    assert [path for path in scanned if path.name == "validation_summary.json"]  # each run's summary for it
    for run_id in (first.report["run"]["run_id"], second_run_id(second)):  # the report pages and their charts
        assert {"report.html", "age_groups.png", "age_groups.svg", "quality_trend.png"} <= {
            path.name for path in scanned if path.parent == first.data_dir / "reports" / run_id
        }
    assert any(".prefect-cache" in str(path) for path in scanned)  # and Prefect's persisted results


def second_run_id(run: FlowRun) -> str:
    """The run id of a run that failed (it wrote no --report-json): its report folder is the newest."""
    folders = sorted((run.data_dir / "reports").iterdir(), key=lambda path: path.stat().st_mtime)
    return folders[-1].name


def test_leak_scan_finds_a_planted_value(tmp_path) -> None:
    record = {
        "firstname": "Zebedee",
        "lastname": "Quarterfield",
        "email": "zebedee.q77@example.com",
        "phone": "+15550001111",
        "address": {"street": "12 Hidden Lane", "country": "Chad"},
    }
    needles = Needles.from_records([record])
    (tmp_path / "clean.txt").write_text("nothing here")
    assert scan([tmp_path], needles) == []
    (tmp_path / "log.txt").write_text("failed for zebedee.q77 at +15550001111")
    assert {finding.needle for finding in scan([tmp_path], needles)} >= {"zebedee.q77"}
    (tmp_path / "log.txt").unlink()
    (tmp_path / "events.jsonl").write_text('{"eventType": "START"}\n{"name": "Quarterfield"}\n')
    assert [(f.how, f.needle) for f in scan([tmp_path], needles)] == [("jsonl", "Quarterfield")]
    # a single name as a cell of a report page or a chart label, and in a PNG's metadata
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "report.html").write_text("<table><tr><td>Zebedee</td></tr></table>")
    (pages / "chart.svg").write_text("<svg><text x='1'>Quarterfield</text></svg>")
    Image.new("RGB", (4, 4)).save(pages / "chart.png", pnginfo=_png_info("Title", "Zebedee"))
    found = {(finding.path.name, finding.how, finding.needle) for finding in scan([pages], needles)}
    assert found == {
        ("report.html", "html-text", "Zebedee"),
        ("chart.svg", "html-text", "Quarterfield"),
        ("chart.png", "png-text", "Zebedee"),
    }


def _png_info(key: str, value: str) -> PngInfo:
    info = PngInfo()
    info.add_itxt(key, value, zip=True)  # compressed: invisible to a scan of the raw bytes
    return info
