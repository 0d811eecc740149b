"""Numbers you can defend: complete pages, one key and one reference date per report, incremental pages,
and the right to be forgotten - real flows against the twin and a small stand-in server of our own."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import orjson
import pyarrow.parquet as pq
import pytest
from faker_twin import FakerTwin, TwinFaults, generate_page

from flows.cli import main
from flows.parameters import RunDefaults, resolve_parameters
from flows.plan import plan_pages
from flows.run.tasks import secret_fingerprint
from flows.settings import OFFLINE_DEMO_SECRET, get_settings
from tests.conftest import free_port
from tests.integration.conftest import REFERENCE_DATE, FlowRun
from tests.oracle import Expected, expected_from_served, person_key

SECRET = OFFLINE_DEMO_SECRET.encode()
NEW_SECRET = "rotated-key-for-the-re-key-test-0123456789"
EXACT_KEYS = ("total_persons", "top_gmail_countries", "gmail_over_60", "age_groups", "quarantined")
IDENTITY = ("firstname", "lastname", "email", "phone", "birthday")


class StandIn(BaseHTTPRequestHandler):
    """/persons like the API, except for the pages (by _seed) told to come back empty, short or long."""

    faults: ClassVar[dict[int, str]] = {}
    served: ClassVar[Counter[int]] = Counter()

    def do_GET(self) -> None:
        query = {name: values[0] for name, values in parse_qs(urlsplit(self.path).query).items()}
        seed, quantity = int(query["_seed"]), int(query["_quantity"])
        StandIn.served[seed] += 1
        data = generate_page(seed, quantity, query.get("_locale", "en_US"))["data"]
        fault = StandIn.faults.get(seed)
        if fault == "empty":
            data = []
        elif fault == "half" or (fault == "short-once" and StandIn.served[seed] == 1):
            data = data[: quantity // 2]
        elif fault == "over":
            data = data + data[:5]
        body = orjson.dumps({"status": "OK", "code": 200, "total": len(data), "data": data})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def stand_in() -> Iterator[str]:
    """The stand-in server on 127.0.0.1; its base URL."""
    StandIn.faults, StandIn.served = {}, Counter()
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def setting(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set PERSONS_* (or other) variables for the rest of the test, settings re-read."""

    def set_values(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    return set_values


def staging_keys(run: FlowRun) -> set[str]:
    return {key for (key,) in run.query("select person_key from staging.persons")}


def assert_report_is(report: dict[str, Any], expected: Expected) -> None:
    """Report figures equal the oracle's, and its records add up."""
    model = expected.report()
    for key in EXACT_KEYS:
        assert report[key] == model[key], key
    assert report["gmail_germany_share_pct"] == pytest.approx(model["gmail_germany_share_pct"], abs=0.005)
    counts = report["accounting"]
    assert counts["requested"] == (
        counts["published"]
        + counts["quarantined"]
        + counts["rejected"]
        + counts["erased"]
        + counts["duplicates"]
    )
    assert counts["published"] == report["total_persons"]


def cli(*args: str) -> int:
    return main(list(args))


def test_short_empty_and_over_long_pages_are_rejected_and_named(
    stand_in: str, run_pipeline: Callable[..., FlowRun], setting: Callable[..., None]
) -> None:
    setting(PERSONS_MAX_ATTEMPTS="3")
    params = {"total": 2000, "page_size": 500, "pages_per_batch": 1, "seed": 31}
    seeds = [page.seed for page in plan_pages(resolve_parameters(RunDefaults(), **params))]
    StandIn.faults = {seeds[0]: "empty", seeds[1]: "half", seeds[2]: "over", seeds[3]: "short-once"}

    run = run_pipeline(stand_in, **params)

    assert run.state.is_failed()
    message = run.state.message
    for reason in (
        "source returned 0 of 500 records for page 0",
        "source returned 250 of 500 records for page 1",
        "source returned 505 of 500 records for page 2",
    ):
        assert reason in message
    assert StandIn.served[seeds[3]] == 2  # a short page is retried like a malformed one, then accepted
    assert StandIn.served[seeds[0]] >= 3
    served = [{"_seed": str(seeds[3]), "_quantity": "500"}]
    expected = expected_from_served(served, TwinFaults(), REFERENCE_DATE, SECRET)
    assert staging_keys(run) == set(expected.persons)  # only the complete page was published
    rejected = run.query(
        "select rejection_reason, requested from landing.batches where status = 'rejected' order by 1"
    )
    assert [reason.rsplit("last problem: ", 1)[1] for reason, _ in rejected] == [
        "source returned 0 of 500 records for page 0",
        "source returned 250 of 500 records for page 1",
        "source returned 505 of 500 records for page 2",
    ]
    report = run.report
    assert report["rejected_batches"] == 3
    assert report["accounting"] == {
        "requested": 2000,
        "received": 500,
        "published": 500,
        "quarantined": 0,
        "rejected": 1500,
        "erased": 0,
        "duplicates": 0,
    }
    manifest = json.loads(next((run.data_dir / "landing").rglob("manifest.json")).read_text())
    records = manifest["records"]
    assert (records["requested"], records["published"], records["rejected"]) == (2000, 500, 1500)
    parts = ("published", "quarantined", "duplicates", "erased", "rejected")
    assert records["requested"] == sum(records[name] for name in parts)


def test_a_second_key_is_refused_and_a_rekey_switches_generations(
    twin: FakerTwin,
    run_pipeline: Callable[..., FlowRun],
    setting: Callable[..., None],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    params = {"total": 1000, "page_size": 500, "pages_per_batch": 2, "seed": 41}
    first = run_pipeline(twin.url, **params)
    assert first.state.is_completed(), first.state.message
    old_keys = staging_keys(first)
    requests = twin.stats()["persons_requests"]
    options = ["--api-url", twin.url, "--data-dir", str(first.data_dir), "--reference-date", "2026-06-15"]
    options += ["--total", "1000", "--page-size", "500", "--pages-per-batch", "2", "--seed", "41"]
    setting(PERSONS_HMAC_SECRET=NEW_SECRET)

    assert cli("run", *options) == 2
    assert "persons-pipeline rekey" in capsys.readouterr().err
    refused = run_pipeline(twin.url, data_dir=first.data_dir, **params)  # a deployment's run: same refusal
    assert refused.state.is_failed() and "one key at a time" in refused.state.message
    assert twin.stats()["persons_requests"] == requests  # refused before any request

    setting(PERSONS_PREVIOUS_HMAC_SECRET=OFFLINE_DEMO_SECRET, PERSONS_MAX_ATTEMPTS="1")
    dead = ["--api-url", f"http://127.0.0.1:{free_port()}"]
    assert cli("rekey", *options, *dead) == 1  # the source is down: the re-key fails ...
    assert staging_keys(first) == old_keys  # ... and the old generation keeps serving
    assert first.query("select status from staging.generations order by created_at") == [
        ("serving",),
        ("failed",),
    ]

    assert cli("rekey", *options, "--report-json", str(tmp_path / "rekey.json")) == 0
    expected = expected_from_served(twin.served(), TwinFaults(), REFERENCE_DATE, NEW_SECRET.encode())
    assert staging_keys(first) == set(expected.persons) and not staging_keys(first) & old_keys
    report = json.loads((tmp_path / "rekey.json").read_text())
    assert report["total_persons"] == 1000 == len(expected.persons)  # each person once, under the new key
    assert report["key_fingerprint"] == secret_fingerprint_of(NEW_SECRET)
    for table in ("staging.persons", "landing.persons"):
        assert first.query(f"select distinct key_fingerprint from {table}") == [
            (secret_fingerprint_of(NEW_SECRET),)
        ]
    statuses = first.query("select status from staging.generations order by created_at")
    assert statuses == [("retired",), ("failed",), ("serving",)]
    assert_report_is(report, expected)
    before = twin.stats()["persons_requests"]
    assert cli("run", *options) == 0  # the new key serves; its pages are held: nothing is fetched
    assert twin.stats()["persons_requests"] == before


def secret_fingerprint_of(secret: str) -> str:
    from pydantic import SecretStr

    return secret_fingerprint(SecretStr(secret))


def test_a_later_reference_date_restates_everything_like_a_run_from_scratch(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun]
) -> None:
    faults = TwinFaults(bad_record_rate=0.05)
    twin.set_faults(faults)
    params = {"total": 3000, "page_size": 500, "pages_per_batch": 3, "seed": 51}
    first = run_pipeline(twin.url, **params)
    assert first.state.is_completed(), first.state.message
    later = date(2034, 6, 15)  # the oldest persons (born 1900-1903) are over 130 now

    second = run_pipeline(twin.url, data_dir=first.data_dir, **{**params, "reference_date": later})

    assert second.state.is_completed(), second.state.message
    from_scratch = expected_from_served(twin.served(), faults, later, SECRET)
    at_first = expected_from_served(twin.served(), faults, REFERENCE_DATE, SECRET)
    aged_out = {k for k, reason in from_scratch.quarantined.items() if reason == "age_out_of_range"}
    assert aged_out & set(at_first.persons)  # published at the first date, out of range at the later one
    assert staging_keys(second) == set(from_scratch.persons)
    assert_report_is(second.report, from_scratch)
    assert second.report["quarantine_reasons"] == dict(
        sorted(
            Counter(r for k, r in from_scratch.quarantined.items() if k not in from_scratch.persons).items()
        )
    )
    assert second.report["reference_date"] == later.isoformat() == second.report["run"]["reference_date"]
    assert second.query("select distinct age_reference_date from staging.persons") == [(later,)]


def test_growing_total_fetches_only_the_new_pages(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun]
) -> None:
    params = {"page_size": 500, "pages_per_batch": 8, "seed": 61}
    first = run_pipeline(twin.url, total=2500, **params)  # one batch of 5 pages
    assert first.state.is_completed(), first.state.message
    assert twin.stats()["persons_requests"] == 5

    grown = run_pipeline(twin.url, data_dir=first.data_dir, total=4000, **params)

    assert grown.state.is_completed(), grown.state.message
    assert twin.stats()["persons_requests"] == 8  # the 3 new pages, not the 8 of the grown batch
    again = run_pipeline(twin.url, data_dir=first.data_dir, total=4000, **params)
    assert again.state.is_completed(), again.state.message
    assert twin.stats()["persons_requests"] == 8
    expected = expected_from_served(twin.served(), TwinFaults(), REFERENCE_DATE, SECRET)
    assert staging_keys(again) == set(expected.persons) and len(expected.persons) == 4000
    assert_report_is(again.report, expected)


def identity_lines(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps({name: record[name] for name in IDENTITY}) + "\n" for record in records)


def forgettable(expected: Expected, secret: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(three published persons' records, one quarantined-only person's record)."""
    usable = [
        r
        for r in expected.raw_records
        if isinstance(r, dict) and all(isinstance(r.get(n), str) for n in IDENTITY)
    ]
    published = [r for r in usable if person_key(r, secret) in expected.persons][:3]
    quarantined = [
        r
        for r in usable
        if person_key(r, secret) in expected.quarantined and person_key(r, secret) not in expected.persons
    ][:1]
    return published, quarantined


def landed_keys(data_dir: Path) -> set[str]:
    keys: set[str] = set()
    for path in (data_dir / "landing").rglob("*.parquet"):
        keys.update(pq.read_table(path, columns=["person_key"]).column("person_key").to_pylist())
    return keys


def test_forget_removes_persons_everywhere_and_no_rerun_brings_them_back(
    twin: FakerTwin,
    run_pipeline: Callable[..., FlowRun],
    setting: Callable[..., None],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    faults = TwinFaults(bad_record_rate=0.05)
    twin.set_faults(faults)
    params = {"total": 2000, "page_size": 500, "pages_per_batch": 2, "seed": 71}
    first = run_pipeline(twin.url, **params)
    assert first.state.is_completed(), first.state.message
    expected = expected_from_served(twin.served(), faults, REFERENCE_DATE, SECRET)
    published, quarantined = forgettable(expected, SECRET)
    forgotten = {person_key(record, SECRET) for record in published + quarantined}
    assert len(forgotten) == 4 and forgotten <= landed_keys(first.data_dir)
    identity_file = tmp_path / "erasure-request.jsonl"
    identity_file.write_text(identity_lines(published + quarantined))

    assert cli("forget", "--identity-file", str(identity_file), "--data-dir", str(first.data_dir)) == 0

    printed = capsys.readouterr().out
    assert "persons_erased: 4" in printed and "files_rewritten: " in printed
    assert not any(record[name] in printed for record in published + quarantined for name in IDENTITY)
    assert not forgotten & staging_keys(first)
    for table in ("landing.persons", "landing.quarantined_persons", "staging.persons_rebuild"):
        assert not forgotten & {key for (key,) in first.query(f"select person_key from {table}")}, table
    assert not forgotten & landed_keys(first.data_dir)  # the landed files were rewritten without them
    assert {key for (key,) in first.query("select person_key from staging.tombstones")} == forgotten
    audit = first.query("select identities, persons_erased, staging_rows_removed from landing.erasures")
    assert audit == [(4, 4, 3)]
    for key in forgotten:
        expected.persons.pop(key, None)
        expected.quarantined.pop(key, None)
    assert_report_is(first.report_after(), expected)

    # a later reference date replays every page (the forgotten persons' too), a re-key even more so
    later = run_pipeline(twin.url, data_dir=first.data_dir, **{**params, "reference_date": date(2027, 1, 1)})
    assert later.state.is_completed(), later.state.message
    assert not forgotten & staging_keys(later) and not forgotten & landed_keys(later.data_dir)
    assert later.report["accounting"]["erased"] == 4
    setting(PERSONS_HMAC_SECRET=NEW_SECRET, PERSONS_PREVIOUS_HMAC_SECRET=OFFLINE_DEMO_SECRET)
    options = ["--api-url", twin.url, "--data-dir", str(first.data_dir), "--reference-date", "2027-01-01"]
    options += ["--total", "2000", "--page-size", "500", "--pages-per-batch", "2", "--seed", "71"]
    assert cli("rekey", *options) == 0
    rekeyed = {person_key(record, NEW_SECRET.encode()) for record in published + quarantined}
    assert not rekeyed & staging_keys(later) and not rekeyed & landed_keys(later.data_dir)
    tombstones = later.query(
        "select count(*) from staging.tombstones where key_fingerprint = ?",
        [secret_fingerprint_of(NEW_SECRET)],
    )
    assert tombstones == [(4,)]  # carried over to the new key
    assert later.query("select count(*) from staging.persons")[0][0] == len(expected.persons)
