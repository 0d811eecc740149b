"""The gate's suite, generated from the column policy (`flows.anonymise.policy`).

`expectations/persons_batch.json` is this module's output, kept under version control so that a change of
the gate shows in review; `tests/unit/test_policy.py` fails if the file and the policy disagree. Regenerate
it with `python -m flows.gate.suite > expectations/persons_batch.json`.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import pyarrow as pa

from flows.anonymise.policy import (
    EMAIL_LIKE,
    OUTPUT_COLUMNS,
    PHONE_LIKE,
    REDACTED_EMAIL,
    REDACTED_PHONE,
    SPREADSHEET_UNSAFE,
    screened_columns,
    text_columns,
)

SUITE_NAME = "persons_batch"
SUITE_NOTE = (
    "Gate for every merge of an anonymised persons batch into staging. Results carry counts only "
    "(result_format SUMMARY, partial_unexpected_count 0); no min/max/most-common expectations on personal "
    "columns."
)
# What no text column may hold: a value that looks like one, or the marker the privacy screen put instead.
FORBIDDEN_TEXT = {
    "email_address": (EMAIL_LIKE + "|" + re.escape(REDACTED_EMAIL), "an email address"),
    "phone_number": (PHONE_LIKE + "|" + re.escape(REDACTED_PHONE), "a phone number"),
}


def expectation(kind: str, name: str, note: str, **kwargs: Any) -> dict[str, Any]:
    """One expectation as the suite file stores it."""
    return {
        "type": kind,
        "kwargs": kwargs,
        "meta": {"name": name, "notes": {"format": "markdown", "content": [note]}},
    }


def suite_definition() -> dict[str, Any]:
    """The whole suite: columns, row count, types, required values, key, patterns and sets, privacy."""
    return {
        "name": SUITE_NAME,
        "meta": {"notes": {"format": "markdown", "content": [SUITE_NOTE]}},
        "expectations": [
            *table_expectations(),
            *column_expectations(),
            *value_expectations(),
            *privacy_expectations(),
        ],
    }


def table_expectations() -> list[dict[str, Any]]:
    """The batch as a table: exactly the policy's columns, and the rows the plan asked for."""
    return [
        expectation(
            "expect_table_columns_to_match_set",
            "columns_are_exactly_the_policy_columns",
            "Required columns present, and nothing else: no removed (raw) column can slip through.",
            column_set=[column.name for column in OUTPUT_COLUMNS],
            exact_match=True,
        ),
        expectation(
            "expect_table_row_count_to_equal",
            "row_count_is_extracted_minus_held_back",
            "Rows = extracted - quarantined - in-batch duplicates, passed in per batch.",
            value={"$PARAMETER": "expected_rows"},
        ),
    ]


def column_expectations() -> list[dict[str, Any]]:
    """Every column typed and required; the key unique."""
    typed = [
        expectation(
            "expect_column_values_to_be_of_type",
            f"{column.name}_is_text" if is_text else f"{column.name}_is_a_date",
            "Typed as text." if is_text else "Typed as a date.",
            column=column.name,
            type_="str" if is_text else "datetime64",
        )
        for column in OUTPUT_COLUMNS
        for is_text in [pa.types.is_string(column.type)]
    ]
    required = [
        expectation("expect_column_values_to_not_be_null", f"{column.name}_not_null", "Required value.",
                    column=column.name)
        for column in OUTPUT_COLUMNS
    ]  # fmt: skip
    unique = expectation(
        "expect_column_values_to_be_unique",
        "person_key_unique",
        "One row per person in a batch.",
        column="person_key",
    )
    return [*typed, *required, unique]


def value_expectations() -> list[dict[str, Any]]:
    """Each column's pattern or set of values, as the policy declares it."""
    items = []
    for column in OUTPUT_COLUMNS:
        if column.pattern is not None:
            items.append(
                expectation(
                    "expect_column_values_to_match_regex",
                    f"{column.name}_{column.check}",
                    column.note,
                    column=column.name,
                    regex=column.pattern,
                )
            )
        if column.value_set is not None:
            items.append(
                expectation(
                    "expect_column_values_to_be_in_set",
                    f"{column.name}_{column.check}",
                    column.note,
                    column=column.name,
                    value_set=list(column.value_set),
                )
            )
    return items


def privacy_expectations() -> list[dict[str, Any]]:
    """Text from the source is spreadsheet-safe (defence in depth behind the cleaning and the patterns), and
    no text column holds what looks like an email address or a phone number."""
    safe = [
        expectation(
            "expect_column_values_to_not_match_regex",
            f"{name}_is_spreadsheet_safe",
            "No value may start a spreadsheet formula (= + - @ tab CR) or hold a control or format "
            "character.",
            column=name,
            regex=SPREADSHEET_UNSAFE,
        )
        for name in screened_columns()
    ]
    forbidden = [
        expectation(
            "expect_column_values_to_not_match_regex",
            f"{name}_holds_no_{kind}",
            f"No value may look like {what}, nor be one the privacy screen redacted before landing.",
            column=name,
            regex=regex,
        )
        for name in text_columns()
        for kind, (regex, what) in FORBIDDEN_TEXT.items()
    ]
    return [*safe, *forbidden]


def render_suite() -> str:
    """The suite file's text."""
    return json.dumps(suite_definition(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_suite())
