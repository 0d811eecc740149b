"""Report rendering: JSON keys, Markdown, CSV and the stdout summary."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from flows.report.render import (
    Report,
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
