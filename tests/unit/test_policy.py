"""The column policy is the one declaration: known fields, raw and persons schemas, the gate follow it."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc

from flows.anonymise.policy import (
    COLUMN_POLICY,
    COUNTRY_CODE_PATTERN,
    COUNTRY_NAME_PATTERN,
    FORMULA_START,
    OUTPUT_COLUMNS,
    SPREADSHEET_UNSAFE,
    Treatment,
    known_address_fields,
    known_person_fields,
    persons_schema,
    raw_source_fields,
    screened_columns,
)
from flows.anonymise.transform import PERSONS_SCHEMA, SCREENED_COLUMNS
from flows.gate.suite import render_suite, suite_definition
from flows.gate.validation import expectations_root
from flows.rawdata.records import ENVELOPE_SCHEMA, KNOWN_ADDRESS_FIELDS, KNOWN_PERSON_FIELDS, RAW_SCHEMA


def test_the_suite_file_is_generated_from_the_policy() -> None:
    stored = (expectations_root() / "persons_batch.json").read_text(encoding="utf-8")
    assert stored == render_suite(), "run: python -m flows.gate.suite > expectations/persons_batch.json"


def test_the_gate_checks_every_output_column() -> None:
    suite = suite_definition()
    columns = {item["kwargs"].get("column") for item in suite["expectations"]} - {None}
    assert columns == {column.name for column in OUTPUT_COLUMNS}
    (column_set,) = [
        item["kwargs"]["column_set"]
        for item in suite["expectations"]
        if item["type"] == "expect_table_columns_to_match_set"
    ]
    assert column_set == PERSONS_SCHEMA.names


def test_the_parser_knows_exactly_the_policy_fields() -> None:
    assert known_person_fields() == KNOWN_PERSON_FIELDS
    assert known_address_fields() == KNOWN_ADDRESS_FIELDS
    assert {name for name in COLUMN_POLICY if "." not in name} | {"address"} == KNOWN_PERSON_FIELDS
    person = ENVELOPE_SCHEMA.field("data").type.value_type
    assert {field.name for field in person} == KNOWN_PERSON_FIELDS
    assert {field.name for field in person.field("address").type} == KNOWN_ADDRESS_FIELDS


def test_the_raw_schema_holds_only_what_anonymisation_reads() -> None:
    read = [name.split(".")[-1] for name in raw_source_fields()]
    assert RAW_SCHEMA.names[: len(read)] == read
    assert all(RAW_SCHEMA.field(name).type == pa.string() for name in read)
    dropped = {
        name.split(".")[-1] for name, (treatment, _) in COLUMN_POLICY.items() if treatment is Treatment.DROP
    }
    assert dropped.isdisjoint(RAW_SCHEMA.names)


def test_every_treatment_shows_in_the_outputs() -> None:
    feeds: dict[str, set[str]] = {name: set() for name in COLUMN_POLICY}
    for column in OUTPUT_COLUMNS:
        for source in column.sources:
            feeds[source].add(column.name)
    for source, (treatment, _) in COLUMN_POLICY.items():
        if treatment is Treatment.DROP:
            assert not feeds[source], source
        elif treatment is Treatment.PSEUDONYMISE:
            assert feeds[source] == {"person_key"}, source
        else:
            assert len(feeds[source]) >= 1, source
    assert PERSONS_SCHEMA.equals(persons_schema())
    assert set(SCREENED_COLUMNS) == {"gender", "email_domain", "country", "country_code"}


def test_the_suite_file_is_valid_json_with_unique_names() -> None:
    names = [item["meta"]["name"] for item in json.loads(render_suite())["expectations"]]
    assert len(names) == len(set(names))


def test_the_gate_checks_carried_text_for_spreadsheets_and_countries_by_their_patterns() -> None:
    by_name = {item["meta"]["name"]: item for item in suite_definition()["expectations"]}
    for column in screened_columns():
        item = by_name[f"{column}_is_spreadsheet_safe"]
        assert item["type"] == "expect_column_values_to_not_match_regex"
        assert item["kwargs"] == {"column": column, "regex": SPREADSHEET_UNSAFE}
    assert by_name["country_looks_like_a_name"]["kwargs"]["regex"] == COUNTRY_NAME_PATTERN
    assert by_name["country_code_is_two_letters"]["kwargs"]["regex"] == COUNTRY_CODE_PATTERN


def test_spreadsheet_unsafe_is_a_formula_start_or_an_invisible_character() -> None:
    invisible = ["Ger\x00many", "Deutschland\u202e", "\ufeffX", "a\u200bb"]
    unsafe = [f"{start}1+1" for start in FORMULA_START] + invisible
    safe = ["Germany", "C\u00f4te d'Ivoire", "Guinea-Bissau", "1+1=2", "a@b", "", "\u30dc\u30b9\u30cb\u30a2"]
    hits = pc.match_substring_regex(pa.array(unsafe + safe), SPREADSHEET_UNSAFE).to_pylist()
    assert hits == [True] * len(unsafe) + [False] * len(safe)
