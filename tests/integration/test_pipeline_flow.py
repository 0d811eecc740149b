"""The whole flow against the Faker twin: report, idempotency, caching, faults, bad records and the gate."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from faker_twin import FakerTwin, TwinFaults

from flows.settings import OFFLINE_DEMO_SECRET
from tests.integration.conftest import REFERENCE_DATE, FlowRun
from tests.oracle import expected_from_served

SECRET = OFFLINE_DEMO_SECRET.encode()
EXACT_KEYS = ("total_persons", "top_gmail_countries", "gmail_over_60", "age_groups", "quarantined")


def staging_keys(run: FlowRun) -> set[str]:
    """Every person_key in staging."""
    return {key for (key,) in run.query("select person_key from staging.persons")}


def test_report_matches_an_independent_model_of_the_served_pages(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun]
) -> None:
    faults = TwinFaults(bad_record_rate=0.05, coordinates="mixed", extra_fields=True)
    twin.set_faults(faults)

    run = run_pipeline(twin.url, total=6000, page_size=500, pages_per_batch=4, seed=7)

    assert run.state.is_completed(), run.state.message
    served = twin.served()
    assert len({tuple(sorted(p.items())) for p in served}) == 12  # every planned page, each a distinct seed
    expected = expected_from_served(served, faults, REFERENCE_DATE, SECRET)
    report = run.report
    model = expected.report()
    for key in EXACT_KEYS:
        assert report[key] == model[key], key
    assert report["gmail_germany_share_pct"] == pytest.approx(model["gmail_germany_share_pct"], abs=0.005)
    assert staging_keys(run) == set(expected.persons)
    assert report["quarantine_reasons"] == dict(
        sorted(Counter(r for k, r in expected.quarantined.items() if k not in expected.persons).items())
    )
    manifest_path = next((run.data_dir / "landing").rglob("manifest.json"))
    manifest = json.loads(manifest_path.read_text())
    unknown = Counter()
    for batch in manifest["batches"]:
        unknown.update(batch["unknown_fields"])
    assert {"middlename", "ssn", "address.county"} <= set(unknown)  # dropped and counted, never passed on
    assert run.query("select count(*) from landing.persons")[0][0] == len(expected.persons)
    columns = {row[0] for row in run.query("select column_name from information_schema.columns")}
    assert (
        not {"firstname", "lastname", "email", "phone", "street", "birthday", "middlename", "ssn"} & columns
    )


def test_rerun_fetches_nothing_and_leaves_staging_unchanged(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun]
) -> None:
    params = {"total": 4000, "page_size": 500, "pages_per_batch": 4, "seed": 11}
    first = run_pipeline(twin.url, **params)
    assert first.state.is_completed(), first.state.message
    requests_after_first = twin.stats()["persons_requests"]
    keys_first = staging_keys(first)

    second = run_pipeline(twin.url, data_dir=first.data_dir, **params)

    assert second.state.is_completed(), second.state.message
    assert twin.stats()["persons_requests"] == requests_after_first  # every page came from the cache
    assert staging_keys(second) == keys_first
    assert second.report["total_persons"] == first.report["total_persons"] == len(keys_first)
    statuses = second.query("select status, count(*) from landing.batches group by status")
    assert dict(statuses) == {"merged": 2}  # the rerun planned no batch: its pages are all published

    grown = run_pipeline(twin.url, data_dir=first.data_dir, **{**params, "total": 6000})

    assert grown.state.is_completed(), grown.state.message
    assert twin.stats()["persons_requests"] == requests_after_first + 4  # only the 4 new pages
    assert staging_keys(grown) > keys_first


def test_missing_landed_files_are_fetched_again(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun]
) -> None:
    params = {"total": 2000, "page_size": 500, "pages_per_batch": 4, "seed": 5}
    first = run_pipeline(twin.url, **params)
    assert first.state.is_completed(), first.state.message
    for parquet in (first.data_dir / "landing").rglob("*.parquet"):
        parquet.unlink()
    (first.data_dir / "warehouse.duckdb").unlink()  # unpublished again: the cache alone answers for them
    requests = twin.stats()["persons_requests"]

    again = run_pipeline(twin.url, data_dir=first.data_dir, **params)

    assert again.state.is_completed(), again.state.message
    assert twin.stats()["persons_requests"] == requests + 4
    assert staging_keys(again) == staging_keys(first)


def test_every_person_loaded_exactly_once_through_faults(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun]
) -> None:
    faults = TwinFaults(error_rate=0.3, rate_limit_every=5, retry_after_s=1, truncate_rate=0.1)
    twin.set_faults(faults)

    run = run_pipeline(twin.url, total=5000, page_size=500, pages_per_batch=5, seed=3)

    assert run.state.is_completed(), run.state.message
    stats = twin.stats()
    assert stats["by_status"].get("429", 0) >= 2
    assert sum(stats["by_status"].get(code, 0) for code in ("500", "502", "503")) >= 1
    expected = expected_from_served(twin.served(), faults, REFERENCE_DATE, SECRET)
    assert len(expected.persons) == 5000
    assert staging_keys(run) == set(expected.persons)
    per_key = run.query("select count(*), count(distinct person_key) from landing.persons")[0]
    assert per_key == (5000, 5000)  # retries never duplicated a row in landing either


def test_bad_records_are_quarantined_and_injection_strings_do_no_harm(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun]
) -> None:
    faults = TwinFaults(bad_record_rate=0.3)
    twin.set_faults(faults)

    run = run_pipeline(twin.url, total=3000, page_size=1000, pages_per_batch=3, seed=21)

    assert run.state.is_completed(), run.state.message
    expected = expected_from_served(twin.served(), faults, REFERENCE_DATE, SECRET)
    reasons = Counter(expected.quarantined.values())
    assert {"birthday_unparseable", "birthday_in_future", "email_without_domain", "address_missing"} <= set(
        reasons
    )
    assert run.report["quarantined"] == len(expected.quarantined) > 0
    assert run.report["quarantine_reasons"] == dict(sorted(reasons.items()))
    # SQL in a name is only ever keyed; SQL in a country is no country (quarantined); every table still there
    assert reasons["country_invalid"] > 0
    stored = {country for (country,) in run.query("select distinct country from staging.persons")}
    assert not any("DROP TABLE" in country for country in stored)
    assert run.query("select count(*) from staging.persons")[0][0] == len(expected.persons)
    assert run.query("select count(*) from landing.quarantined_persons")[0][0] == sum(reasons.values())


def test_a_batch_failing_the_gate_is_not_merged_and_fails_the_run(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun], tmp_path: Path
) -> None:
    clean = run_pipeline(twin.url, total=1000, page_size=500, pages_per_batch=2, seed=1)
    assert clean.state.is_completed(), clean.state.message
    before = staging_keys(clean)
    twin.set_faults(TwinFaults(pii_country_rate=0.02))

    poisoned = run_pipeline(
        twin.url, data_dir=clean.data_dir, total=1000, page_size=500, pages_per_batch=2, seed=2
    )

    assert poisoned.state.is_failed()
    message = poisoned.state.message
    assert "country_holds_no_email_address" in message
    docs = Path(message.rsplit("data docs: ", 1)[1].strip())
    assert docs.is_file() and docs.name == "index.html"
    assert list(docs.parent.rglob("validations/**/*.html")), "the run's validation page is in its data docs"
    assert staging_keys(poisoned) == before  # nothing of the rejected batch reached staging
    statuses = dict(poisoned.query("select status, count(*) from landing.batches group by status"))
    assert statuses == {"merged": 1, "rejected": 1}
    held_back = poisoned.query(
        "select count(*) from landing.persons where run_id in "
        "(select run_id from landing.batches where status = 'rejected')"
    )
    assert held_back == [(1000,)]  # the rejected batch stays visible in landing
    assert poisoned.report["rejected_batches"] == 1
    assert poisoned.report["total_persons"] == len(before)
    failed = poisoned.query("select failed_expectations from landing.batches where status = 'rejected'")[0][0]
    assert "country_holds_no_email_address" in failed
