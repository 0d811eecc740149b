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
    items = [
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
    for column in OUTPUT_COLUMNS:
        text = pa.types.is_string(column.type)
        items.append(
            expectation(
                "expect_column_values_to_be_of_type",
                f"{column.name}_is_text" if text else f"{column.name}_is_a_date",
                "Typed as text." if text else "Typed as a date.",
                column=column.name,
                type_="str" if text else "datetime64",
            )
        )
    for column in OUTPUT_COLUMNS:
        items.append(
            expectation(
                "expect_column_values_to_not_be_null",
                f"{column.name}_not_null",
                "Required value.",
                column=column.name,
            )
        )
    items.append(
        expectation(
            "expect_column_values_to_be_unique",
            "person_key_unique",
            "One row per person in a batch.",
            column="person_key",
        )
    )
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
    for name in screened_columns():  # text from the source: defence in depth behind the cleaning and patterns
        items.append(
            expectation(
                "expect_column_values_to_not_match_regex",
                f"{name}_is_spreadsheet_safe",
                "No value may start a spreadsheet formula (= + - @ tab CR) or hold a control or format "
                "character.",
                column=name,
                regex=SPREADSHEET_UNSAFE,
            )
        )
    for name in text_columns():
        for kind, (regex, what) in FORBIDDEN_TEXT.items():
            items.append(
                expectation(
                    "expect_column_values_to_not_match_regex",
                    f"{name}_holds_no_{kind}",
                    f"No value may look like {what}, nor be one the privacy screen redacted before landing.",
                    column=name,
                    regex=regex,
                )
            )
    return {
        "name": SUITE_NAME,
        "meta": {"notes": {"format": "markdown", "content": [SUITE_NOTE]}},
        "expectations": items,
    }


def render_suite() -> str:
    """The suite file's text."""
    return json.dumps(suite_definition(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_suite())
