"""Hostile values from the source (issue 17): countries that start a spreadsheet formula or hide control and
format characters, entries that are no records, names with invalid UTF-8 - a real run against the twin's
hostile fault, its report files, its accounting, its monitoring and a leak scan."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from faker_twin import FakerTwin, TwinFaults, load_countries

from flows.settings import OFFLINE_DEMO_SECRET, get_settings
from tests.conftest import PrefectServer
from tests.integration.conftest import REFERENCE_DATE, FlowRun
from tests.leakscan import Needles, scan
from tests.oracle import SURROGATE, Expected, expected_from_served

SECRET = OFFLINE_DEMO_SECRET.encode()
FAULTS = TwinFaults(hostile_rate=0.6)  # enough that on a naive pipeline formula countries top the report
EXACT_KEYS = ("total_persons", "top_gmail_countries", "gmail_over_60", "age_groups", "quarantined")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
TEXT_FILES = {".md", ".csv", ".json", ".html", ".svg"}


@dataclass
class HostileRun:
    """The run, what the oracle expects of the pages the twin served, and what the run printed."""

    run: FlowRun
    expected: Expected
    printed: str

    @property
    def report_dir(self) -> Path:
        return self.run.data_dir / "reports" / self.run.report["run"]["run_id"]


@pytest.fixture(scope="module")
def hostile(prefect_client: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileRun]:
    """One run of 4,000 records (2 batches) of which ~60% are hostile, on a fresh warehouse."""
    from flows.run.pipeline import persons_pipeline

    data_dir = tmp_path_factory.mktemp("hostile") / "data"
    patch = pytest.MonkeyPatch()
    patch.setenv("PERSONS_RATE_LIMIT_PER_S", "0")
    get_settings.cache_clear()
    printed = io.StringIO()
    try:
        with FakerTwin(faults=FAULTS) as twin, contextlib.redirect_stdout(printed):
            state = persons_pipeline(
                api_url=twin.url,
                data_dir=str(data_dir),
                report_json=str(data_dir / "report.json"),
                total=4000,
                page_size=1000,
                pages_per_batch=2,
                seed=17,
                reference_date=REFERENCE_DATE,
                return_state=True,
            )
            served = twin.served()
        expected = expected_from_served(served, FAULTS, REFERENCE_DATE, SECRET)
        yield HostileRun(FlowRun(state, data_dir, data_dir / "report.json"), expected, printed.getvalue())
    finally:
        patch.undo()
        get_settings.cache_clear()


def test_the_run_publishes_what_the_oracle_expects_and_quarantines_each_hostile_entry(
    hostile: HostileRun,
) -> None:
    run, expected = hostile.run, hostile.expected
    assert run.state.is_completed(), run.state.message
    report, model = run.report, expected.report()
    for key in EXACT_KEYS:
        assert report[key] == model[key], key
    assert {key for (key,) in run.query("select person_key from staging.persons")} == set(expected.persons)
    reasons = Counter(r for k, r in expected.quarantined.items() if k not in expected.persons)
    assert report["quarantine_reasons"] == dict(sorted(reasons.items()))
    assert {"not_a_record", "invalid_utf8", "country_invalid"} <= set(reasons)
    assert min(reasons[r] for r in ("not_a_record", "invalid_utf8", "country_invalid")) >= 20
    # every entry that is no record is quarantined on its own, with its page and index
    entries = run.query(
        "select count(*), count(distinct person_key), count(distinct page_seed || '/' || record_index)"
        " from landing.quarantined_persons where quarantine_reason = 'not_a_record'"
    )
    assert entries == [(reasons["not_a_record"],) * 3]


def test_the_accounting_adds_up_with_no_invented_duplicates(hostile: HostileRun) -> None:
    counts = hostile.run.report["accounting"]
    assert counts["requested"] == counts["received"] == 4000
    assert counts["duplicates"] == 0  # the twin's people are unique; hostile entries are no duplicates
    assert counts["requested"] == (
        counts["published"]
        + counts["quarantined"]
        + counts["rejected"]
        + counts["erased"]
        + counts["duplicates"]
    )
    assert (
        counts["quarantined"]
        == hostile.run.report["quarantined"]
        == sum(hostile.run.report["quarantine_reasons"].values())
    )


def test_countries_are_clean_and_not_split(hostile: HostileRun) -> None:
    names = {name for name, _ in load_countries()}
    stored = {country for (country,) in hostile.run.query("select distinct country from staging.persons")}
    assert stored <= names  # Germany\x00 became Germany; +cmd|... was quarantined
    top = [row["country"] for row in hostile.run.report["top_gmail_countries"]]
    assert len(top) == len(set(top)) == 3 and set(top) <= names
    cleaned = hostile.run.query(
        "select sum(metric_value) from monitoring.metrics"
        " where metric = 'cleaned_values' and subject = 'country' and batch_id is not null"
    )
    assert cleaned[0][0] >= 20  # the invisible characters the twin hid in countries, counted per batch


def unsafe_characters(text: str) -> set[str]:
    """Control and format characters other than the line breaks and tabs a file's layout uses."""
    return {c for c in text if unicodedata.category(c) in ("Cc", "Cf") and c not in "\n\t"}


def test_no_report_file_or_printed_line_holds_a_formula_or_an_invisible_character(
    hostile: HostileRun,
) -> None:
    files = sorted(path for path in hostile.report_dir.iterdir() if path.suffix in TEXT_FILES)
    assert {"report.md", "report.json", "top_gmail_countries.csv", "quarantine_reasons.csv"} <= {
        path.name for path in files
    }
    for path in files:
        text = path.read_bytes().decode("utf-8")  # valid UTF-8, or this raises
        assert not unsafe_characters(text), path.name
        if path.suffix == ".csv":
            for row in csv.reader(io.StringIO(text, newline="")):
                assert not [cell for cell in row if cell.startswith(FORMULA_START)], (path.name, row)
    for line in hostile.printed.splitlines():
        assert not unsafe_characters(line)
        assert "calc'" not in line and "=1+1" not in line and "HYPERLINK" not in line
    assert "quarantined records:" in hostile.printed


def test_the_monitor_counts_the_quarantine_the_report_counts(hostile: HostileRun) -> None:
    run = hostile.run
    report = run.report
    metrics = dict(
        run.query(
            "select subject, metric_value from monitoring.metrics where batch_id is null and"
            " metric = 'quarantine_rate'"
        )
    )
    assert metrics["all"] == pytest.approx(report["quarantined"] / report["accounting"]["received"])
    records = dict(
        run.query(
            "select subject, metric_value from monitoring.metrics where batch_id is null and"
            " metric = 'quarantined_records'"
        )
    )
    assert records == {reason: float(n) for reason, n in report["quarantine_reasons"].items()}
    breaches = run.query("select metric_value from monitoring.breaches where metric = 'quarantine_rate'")
    assert all(value == pytest.approx(metrics["all"]) for (value,) in breaches)


def test_no_raw_value_of_a_hostile_page_reaches_disk(
    hostile: HostileRun, prefect_client: PrefectServer
) -> None:
    needles = Needles.from_records(hostile.expected.raw_records)
    for record in hostile.expected.raw_records:  # names with invalid UTF-8, as the pipeline repaired them
        if isinstance(record, dict) and SURROGATE.search(str(record.get("firstname"))):
            needles.values.add(SURROGATE.sub("\ufffd", record["firstname"]).strip())
    assert len(needles.substrings) > 3000
    roots = [hostile.run.data_dir, prefect_client.server_home, prefect_client.client_home]
    assert scan(roots, needles) == []


def test_the_report_json_names_no_hostile_value(hostile: HostileRun) -> None:
    document = json.loads((hostile.report_dir / "report.json").read_text(encoding="utf-8"))
    text = json.dumps(document, ensure_ascii=False)
    assert "cmd|" not in text and "\\u0000" not in text and "\u202e" not in text
    assert set(document["quarantine_reasons"]) >= {"not_a_record", "invalid_utf8", "country_invalid"}
