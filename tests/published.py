"""The report's answers as an analyst computes them from the published layers alone (analytics, reporting)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import pytest

PUBLISHED = ("analytics", "reporting")
TOP_N = 3

# One query per answer, reading only published relations (checked by `relations_read`).
ANSWER_SQL = {
    "total_persons": "select count(*) from analytics.fct_persons",
    "gmail_germany_share_pct": (
        "select 100.0 * gmail_users_germany / nullif(persons, 0) from analytics.agg_person_totals"
    ),
    "top_gmail_countries": (
        "select country, gmail_users from analytics.agg_persons_by_country where gmail_users is not null"
        f" order by gmail_users desc, country limit {TOP_N}"
    ),
    "gmail_over_60": "select gmail_users_over_60 from analytics.agg_person_totals",
    "age_groups": "select age_group, persons from analytics.agg_persons_by_age_group order by age_min",
    "quarantine_reasons": "select quarantine_reason, records from reporting.rpt_quarantine_reasons",
    "quarantined": "select coalesce(sum(records), 0) from reporting.rpt_quarantine_reasons",
}


def relations_read(sql: str) -> set[str]:
    """The schema-qualified relations a query reads (after from / join)."""
    return set(re.findall(r"\b(?:from|join)\s+([a-z_]+\.[a-z_]+)", sql))


def published_answers(query: Callable[[str], Sequence[Sequence[Any]]]) -> dict[str, Any]:
    """The report's answers, shaped as in report.json, computed by `ANSWER_SQL` through `query`."""
    rows = {name: query(sql) for name, sql in ANSWER_SQL.items()}
    share = rows["gmail_germany_share_pct"][0][0]
    return {
        "total_persons": int(rows["total_persons"][0][0]),
        "gmail_germany_share_pct": None if share is None else float(share),
        "top_gmail_countries": [
            {"country": country, "gmail_users": int(users)} for country, users in rows["top_gmail_countries"]
        ],
        "gmail_over_60": int(rows["gmail_over_60"][0][0]),
        "age_groups": [{"age_group": group, "persons": int(count)} for group, count in rows["age_groups"]],
        "quarantine_reasons": {reason: int(records) for reason, records in rows["quarantine_reasons"]},
        "quarantined": int(rows["quarantined"][0][0]),
    }


def assert_reproduces(answers: dict[str, Any], report: dict[str, Any]) -> None:
    """Every answer equals the report's; the share as far as the report shows it (two decimals, rounded)."""
    share = "gmail_germany_share_pct"
    differ = {
        name: (value, report[name])
        for name, value in answers.items()
        if name != share and value != report[name]
    }
    assert not differ, differ  # (published, report) per answer; a helper module: no assertion rewriting
    if answers[share] is None or report[share] is None:
        assert answers[share] is report[share], (answers[share], report[share])
    else:
        assert answers[share] == pytest.approx(report[share], abs=0.005 + 1e-9), (
            answers[share],
            report[share],
        )
