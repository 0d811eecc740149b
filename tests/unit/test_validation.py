"""The GX gate on frames: what passes, what fails and by which expectation, and docs that carry no values."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from flows.anonymise.transform import PERSONS_SCHEMA, REDACTED_EMAIL
from flows.gate.validation import BatchRejected, ValidationGate, write_docs_home

KEY = "0123456789abcdef" * 4


def frame(rows: int = 3, **columns: list[object]) -> pa.Table:
    data: dict[str, list[object]] = {
        "person_key": [f"{i:064x}" for i in range(rows)],
        "gender": ["female"] * rows,
        "age_group": ["[21-30]"] * rows,
        "email_domain": ["gmail.com"] * rows,
        "country": ["Germany"] * rows,
        "country_code": ["DE"] * rows,
        "age_reference_date": [date(2026, 1, 1)] * rows,
    }
    data.update(columns)
    return pa.Table.from_pydict(data, schema=PERSONS_SCHEMA)


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> ValidationGate:
    return ValidationGate(tmp_path_factory.mktemp("docs"), "run-unit")


def test_a_good_batch_passes(gate: ValidationGate) -> None:
    result = gate.validate(frame(), "b-good", expected_rows=3)
    assert result.success, result.failed
    assert result.statistics["unsuccessful_expectations"] == 0
    assert gate.build_docs().is_file()
    assert Path(result.docs_page.removeprefix("file://")).is_file()


@pytest.mark.parametrize(
    ("columns", "expected_rows", "failed"),
    [
        ({"person_key": [KEY, KEY, "f" * 64]}, 3, "person_key_unique"),
        ({"age_group": ["[21-30]", "[131-140]", "[21-30]"]}, 3, "age_group_within_bins"),
        ({"gender": ["female", "unknown", "male"]}, 3, "gender_in_known_set"),
        ({"country": ["Germany", None, "France"]}, 3, "country_not_null"),
        ({"country_code": ["DE", "FR", None]}, 3, "country_code_not_null"),
        ({"country": ["Germany", "leak@example.org", "France"]}, 3, "country_holds_no_email_address"),
        ({"country": ["Germany", REDACTED_EMAIL, "France"]}, 3, "country_holds_no_email_address"),
        ({"country": ["Germany", "+49 30 1234567", "France"]}, 3, "country_holds_no_phone_number"),
        ({"email_domain": ["gmail.com", "not a domain", "x.org"]}, 3, "email_domain_looks_like_a_domain"),
        ({}, 4, "row_count_is_extracted_minus_held_back"),
    ],
)
def test_a_bad_batch_fails_by_name(
    gate: ValidationGate, columns: dict[str, list[object]], expected_rows: int, failed: str
) -> None:
    result = gate.validate(frame(**columns), "b-bad", expected_rows=expected_rows)
    assert not result.success
    assert failed in result.failed


def test_country_names_of_every_script_pass(gate: ValidationGate) -> None:
    names = [
        "C\u00f4te d'Ivoire",
        "\u30dc\u30b9\u30cb\u30a2\u30fb\u30d8\u30eb\u30c4\u30a7\u30b4\u30d3\u30ca",
        "Antarctica (the territory South of 60 deg S)",
        "\u0645\u0648\u0646\u062a\u0647\u0646\u06af\u0631\u0648",
    ]
    result = gate.validate(frame(len(names), country=names), "b-scripts", expected_rows=len(names))
    assert result.success, result.failed


@pytest.mark.parametrize(
    ("columns", "failed"),
    [
        ({"country": ["Germany", "+cmd|' /C calc'!A0", "France"]}, "country_is_spreadsheet_safe"),
        ({"country": ["Germany", "+cmd|' /C calc'!A0", "France"]}, "country_looks_like_a_name"),
        ({"country": ["Germany", "Germany\x00", "France"]}, "country_is_spreadsheet_safe"),
        ({"country": ["Germany", "Deutschland\u202e", "France"]}, "country_is_spreadsheet_safe"),
        ({"country": ["Germany", "\u200bGermany", "France"]}, "country_looks_like_a_name"),
        ({"country": ["Germany", "Germany;", "France"]}, "country_looks_like_a_name"),
        ({"country_code": ["DE", "D1", "FR"]}, "country_code_is_two_letters"),
        ({"country_code": ["DE", "=1", "FR"]}, "country_code_is_spreadsheet_safe"),
        ({"gender": ["female", "@male", "male"]}, "gender_is_spreadsheet_safe"),
        ({"email_domain": ["gmail.com", "-x.org", "x.org"]}, "email_domain_is_spreadsheet_safe"),
        ({"email_domain": ["gmail.com", "x\u2066.org", "x.org"]}, "email_domain_is_spreadsheet_safe"),
    ],
)
def test_hostile_text_fails_by_name_with_its_count(
    gate: ValidationGate, columns: dict[str, list[object]], failed: str
) -> None:
    result = gate.validate(frame(**columns), "b-hostile", expected_rows=3)
    assert failed in result.failed
    assert result.unexpected_counts[failed] == 1  # evaluated (in RE2), not an exception


def test_a_removed_column_fails_the_column_set(gate: ValidationGate) -> None:
    bad = frame().append_column("firstname", pa.array(["Zebedee"] * 3))
    result = gate.validate(bad, "b-extra", expected_rows=3)
    assert "columns_are_exactly_the_policy_columns" in result.failed


def test_results_and_docs_carry_counts_not_values(gate: ValidationGate) -> None:
    planted = "zebedee.quarterfield77@example.org"
    result = gate.validate(frame(country=["Germany", planted, "France"]), "b-leak", expected_rows=3)
    assert not result.success
    assert result.unexpected_counts["country_holds_no_email_address"] == 1
    error = BatchRejected("b-leak", result.failed, result.statistics, result.docs_page)
    assert planted not in str(error)
    gate.build_docs()
    for page in gate.docs_dir.rglob("*"):
        if page.is_file() and page.suffix in {".html", ".json"}:
            assert planted not in page.read_text(errors="replace"), page


def test_docs_home_lists_runs(gate: ValidationGate) -> None:
    gate.validate(frame(), "b-home", expected_rows=3)
    gate.build_docs()
    home = write_docs_home(gate.docs_dir.parent)
    assert "run-unit/index.html" in home.read_text()
