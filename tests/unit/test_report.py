"""Report rendering: JSON keys, Markdown, CSV and the stdout summary."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from flows.report.render import (
    Report,
    answer_rows,
    number,
    percent,
    render_csvs,
    render_json,
    render_markdown,
    render_summary,
    write_report_files,
)

REPORT = Report(
    total_persons=10,
    gmail_germany_share_pct=12.5,
    top_gmail_countries=[{"country": "Germany", "gmail_users": 3}, {"country": "A|B", "gmail_users": 1}],
    gmail_over_60=2,
    age_groups=[{"age_group": "[01-10]", "persons": 4}, {"age_group": "[61-70]", "persons": 6}],
    quarantined=1,
    quarantine_reasons={"birthday_in_future": 1},
)


def test_json_has_the_contract_keys() -> None:
    document = json.loads(render_json(REPORT, {"run_id": "r1"}))
    assert {
        "total_persons",
        "gmail_germany_share_pct",
        "top_gmail_countries",
        "gmail_over_60",
        "age_groups",
        "quarantined",
    } <= set(document)
    assert document["top_gmail_countries"][0] == {"country": "Germany", "gmail_users": 3}
    assert document["run"] == {"run_id": "r1"}


def test_markdown_escapes_table_cells() -> None:
    text = render_markdown(REPORT)
    assert "| 2 | A\\|B | 1 |" in text
    assert "12.50" in text


def test_csvs_round_trip() -> None:
    files = render_csvs(REPORT)
    rows = list(csv.reader(io.StringIO(files["top_gmail_countries.csv"])))
    assert rows == [["rank", "country", "gmail_users"], ["1", "Germany", "3"], ["2", "A|B", "1"]]
    assert set(files) == {
        "summary.csv",
        "top_gmail_countries.csv",
        "age_groups.csv",
        "quarantine_reasons.csv",
    }


def test_summary_and_files(tmp_path: Path) -> None:
    assert "Germany (3)" in render_summary(REPORT)
    written = write_report_files(REPORT, tmp_path / "r")
    assert {path.name for path in written} == {
        "report.md",
        "report.json",
        "summary.csv",
        "top_gmail_countries.csv",
        "age_groups.csv",
        "quarantine_reasons.csv",
    }


HOSTILE = Report(
    total_persons=10,
    gmail_germany_share_pct=None,
    top_gmail_countries=[
        {"country": "+cmd|' /C calc'!A0", "gmail_users": 3},
        {"country": "=1+1", "gmail_users": 2},
        {"country": "Germany\x00", "gmail_users": 2},
        {"country": "Deutschland\u202e", "gmail_users": 1},
    ],
    gmail_over_60=-2,
    age_groups=[{"age_group": "@SUM(A1)", "persons": 4}, {"age_group": "\t-1", "persons": 6}],
    quarantined=1,
    quarantine_reasons={"\r=cmd": 1},
)


def test_csv_cells_that_would_start_a_formula_are_text_and_numbers_stay_numbers() -> None:
    files = render_csvs(HOSTILE)
    for name, text in files.items():
        for row in csv.reader(io.StringIO(text, newline="")):
            for cell in row:
                assert not cell.startswith(("=", "+", "@", "\t", "\r")), (name, cell)
                assert not cell.startswith("-") or cell.lstrip("-").isdigit(), (name, cell)  # -2 is a number
    countries = list(csv.reader(io.StringIO(files["top_gmail_countries.csv"], newline="")))
    assert countries[1] == ["1", "'+cmd|' /C calc'!A0", "3"]
    assert countries[2] == ["2", "'=1+1", "2"]
    summary = dict(csv.reader(io.StringIO(files["summary.csv"], newline="")))
    assert summary["gmail_over_60"] == "-2"
    groups = list(csv.reader(io.StringIO(files["age_groups.csv"], newline="")))
    assert groups[1:] == [["'@SUM(A1)", "4"], ["\\t-1", "6"]]
    assert list(csv.reader(io.StringIO(files["quarantine_reasons.csv"], newline="")))[1] == ["\\r=cmd", "1"]
    assert all("\x00" not in text and "\u202e" not in text for text in files.values())


def test_markdown_and_stdout_show_control_and_format_characters_as_escapes() -> None:
    for text in (render_markdown(HOSTILE), render_summary(HOSTILE)):
        assert "\x00" not in text and "\u202e" not in text and "\r" not in text
        assert "Germany\\x00" in text and "Deutschland\\u202e" in text
    assert "| \\r=cmd | 1 |" in render_markdown(HOSTILE)


@pytest.mark.parametrize(
    ("exact", "shown"),
    [(1.2425, 1.24), (2.675, 2.68), (0.005, 0.01), (12.5, 12.5), (100.0, 100.0), (None, None)],
)
def test_the_share_is_rounded_once_half_up_where_the_report_is_made(
    exact: float | None, shown: float | None
) -> None:
    report = Report(**{**REPORT.to_dict(), "gmail_germany_share_pct": exact})
    assert report.gmail_germany_share_pct == shown
    assert json.loads(render_json(report))["gmail_germany_share_pct"] == shown


def test_one_rounding_rule_in_json_stdout_and_the_artifact_rows() -> None:
    report = Report(**{**REPORT.to_dict(), "gmail_germany_share_pct": 100 * 373 / 30020})  # 1.24250499...
    assert json.loads(render_json(report))["gmail_germany_share_pct"] == 1.24
    assert "Gmail users in Germany:        1.24% of all persons" in render_summary(report)
    rows = {row["figure"]: row["value"] for row in answer_rows(report)}
    assert rows["Gmail users in Germany, share of all persons"] == "1.24%"


def test_the_artifact_rows_are_the_answers_in_words() -> None:
    report = Report(**{**REPORT.to_dict(), "total_persons": 30000, "gmail_over_60": 1187})
    rows = answer_rows(report)
    assert [row["figure"] for row in rows[:4]] == [
        "Persons published",
        "Gmail users in Germany, share of all persons",
        "Top 3 Gmail countries (Gmail users)",
        "Gmail users older than 60",
    ]
    assert [row["value"] for row in rows[:4]] == ["30,000", "12.50%", "Germany (3), A|B (1)", "1,187"]
    assert all("_" not in row["figure"] for row in rows)


def test_numbers_and_percentages_in_words() -> None:
    assert (number(30000), number(0), number(None)) == ("30,000", "0", "n/a")
    assert (percent(1.2425), percent(7.0), percent(None)) == ("1.24%", "7.00%", "n/a")
