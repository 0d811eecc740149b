"""The report: answers to the reporting questions, rendered as JSON, Markdown, CSV and a stdout summary."""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import orjson

from flows.anonymise.policy import FORMULA_START

TOP_COUNTRIES = 3
# The one rounding rule of every percentage the report shows: two decimals, half up, applied once where the
# figure enters the report (Report), so that the page, the artifacts, stdout and report.json agree.
PERCENT_DECIMALS = 2
# How the published persons are protected (reporting.rpt_k_anonymity), recorded with every report.
K_ANONYMITY_FIELDS = (
    "k",
    "persons",
    "exact_persons",
    "generalised_persons",
    "suppressed_persons",
    "classes",
    "smallest_class",
)


@dataclass(frozen=True)
class Report:
    """Aggregates only: counts, shares and country names; never a person's value."""

    total_persons: int
    gmail_germany_share_pct: float | None
    top_gmail_countries: list[dict[str, Any]]
    gmail_over_60: int
    age_groups: list[dict[str, Any]]
    quarantined: int
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    rejected_batches: int = 0
    reference_date: str | None = None
    key_fingerprint: str | None = None
    accounting: dict[str, int] = field(default_factory=dict)
    k_anonymity: dict[str, int | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # frozen: the rounded share replaces the exact one before anyone reads it
        object.__setattr__(self, "gmail_germany_share_pct", round_percent(self.gmail_germany_share_pct))

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON shape (keys are part of the contract)."""
        return asdict(self)


def round_percent(value: float | None) -> float | None:
    """A percentage rounded by the report's one rule: PERCENT_DECIMALS decimals, half up (as written)."""
    if value is None:
        return None
    exact = Decimal(
        repr(float(value))
    )  # the shortest text of the float: 2.675 rounds up, as a reader expects
    return float(exact.quantize(Decimal(1).scaleb(-PERCENT_DECIMALS), rounding=ROUND_HALF_UP))


def percent(value: float | None) -> str:
    """A percentage as every rendering writes it (`1.24%`, `n/a`), rounded by the one rule."""
    rounded = round_percent(value)
    return "n/a" if rounded is None else f"{rounded:.{PERCENT_DECIMALS}f}%"


def number(value: int | None) -> str:
    """A count with thousands separators (`30,000`), `n/a` if unknown."""
    return "n/a" if value is None else f"{value:,}"


def protection_counts(row: tuple[Any, ...]) -> dict[str, int | None]:
    """The row of reporting.rpt_k_anonymity by field name (smallest_class is None if all are suppressed)."""
    pairs = zip(K_ANONYMITY_FIELDS, row, strict=True)
    return {name: None if value is None else int(value) for name, value in pairs}


def render_json(report: Report, context: dict[str, Any] | None = None) -> bytes:
    """Report keys at the top level, run context (run id, reference date, ...) under `run`."""
    payload = report.to_dict()
    if context:
        payload["run"] = context
    return orjson.dumps(payload, option=orjson.OPT_INDENT_2)


def _markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = "n/a" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))
    return visible(text).replace("|", "\\|")


def visible(text: str) -> str:
    """`text` with control and format characters shown as their escapes (`\\x00`, `\\u202e`): one would break
    a table or a terminal line, or hide in it."""
    if text.isprintable():
        return text
    return "".join(
        char.encode("unicode_escape").decode("ascii") if unicodedata.category(char) in ("Cc", "Cf") else char
        for char in text
    )


def spreadsheet_cell(value: Any) -> Any:
    """A CSV value a spreadsheet shows as written: control characters as their escapes (a bare CR would start
    a row of its own), and text that would start a formula with a leading apostrophe (OWASP's advice on CSV
    injection); numbers stay numbers."""
    if not isinstance(value, str):
        return value
    text = visible(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def accounting_of(
    requested: int, received: int, published: int, quarantined: int, rejected: int, erased: int
) -> dict[str, int]:
    """Where every requested record went: requested = published + quarantined + rejected + erased +
    duplicates, where duplicates are received records whose person_key was already counted."""
    return {
        "requested": requested,
        "received": received,
        "published": published,
        "quarantined": quarantined,
        "rejected": rejected,
        "erased": erased,
        "duplicates": received - published - quarantined - erased,
    }


def summary_rows(report: Report) -> list[list[Any]]:
    """(metric, value) rows of the headline figures."""
    return [
        ["reference_date", report.reference_date],
        ["key_fingerprint", report.key_fingerprint],
        *[[f"records_{name}", value] for name, value in report.accounting.items()],
        ["total_persons", report.total_persons],
        ["gmail_germany_share_pct", report.gmail_germany_share_pct],
        ["gmail_over_60", report.gmail_over_60],
        ["quarantined", report.quarantined],
        ["rejected_batches", report.rejected_batches],
    ]


def answer_rows(report: Report) -> list[dict[str, str]]:
    """The four answers and the figures beside them in words, formatted as the report page shows them."""
    top = ", ".join(
        f"{visible(row['country'])} ({number(row['gmail_users'])})" for row in report.top_gmail_countries
    )
    counts = report.accounting
    return [
        {"figure": "Persons published", "value": number(report.total_persons)},
        {
            "figure": "Gmail users in Germany, share of all persons",
            "value": percent(report.gmail_germany_share_pct),
        },
        {"figure": f"Top {TOP_COUNTRIES} Gmail countries (Gmail users)", "value": top or "none"},
        {"figure": "Gmail users older than 60", "value": number(report.gmail_over_60)},
        {"figure": "Records requested", "value": number(counts.get("requested"))},
        {"figure": "Persons quarantined (held back, not published)", "value": number(report.quarantined)},
        {"figure": "Batches rejected (not published)", "value": number(report.rejected_batches)},
        {"figure": "Reference date of every age", "value": report.reference_date or "n/a"},
    ]


def render_markdown(report: Report, context: dict[str, Any] | None = None) -> str:
    """A human-readable report."""
    parts = ["# Persons report", ""]
    if context:
        parts += [f"- {name}: {value}" for name, value in context.items()] + [""]
    parts += ["## Summary", "", _markdown_table(["metric", "value"], summary_rows(report)), ""]
    parts += ["## Top Gmail countries", ""]
    parts += [
        _markdown_table(
            ["rank", "country", "gmail_users"],
            [
                [rank, row["country"], row["gmail_users"]]
                for rank, row in enumerate(report.top_gmail_countries, 1)
            ],
        ),
        "",
    ]
    parts += ["## Age groups", ""]
    parts += [
        _markdown_table(["age_group", "persons"], [[r["age_group"], r["persons"]] for r in report.age_groups])
    ]
    parts += ["", "## Quarantine reasons", ""]
    parts += [
        _markdown_table(["reason", "records"], [[k, v] for k, v in report.quarantine_reasons.items()]),
        "",
    ]
    return "\n".join(parts)


def _csv(headers: list[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([spreadsheet_cell(header) for header in headers])
    writer.writerows([spreadsheet_cell(value) for value in row] for row in rows)
    return buffer.getvalue()


def render_csvs(report: Report) -> dict[str, str]:
    """One CSV per table of the report, by file name."""
    return {
        "summary.csv": _csv(["metric", "value"], summary_rows(report)),
        "top_gmail_countries.csv": _csv(
            ["rank", "country", "gmail_users"],
            [
                [rank, row["country"], row["gmail_users"]]
                for rank, row in enumerate(report.top_gmail_countries, 1)
            ],
        ),
        "age_groups.csv": _csv(
            ["age_group", "persons"], [[r["age_group"], r["persons"]] for r in report.age_groups]
        ),
        "quarantine_reasons.csv": _csv(
            ["reason", "records"], [[k, v] for k, v in report.quarantine_reasons.items()]
        ),
    }


def render_summary(report: Report) -> str:
    """The short text printed at the end of a run."""
    share = percent(report.gmail_germany_share_pct)
    top = (
        ", ".join(f"{visible(row['country'])} ({row['gmail_users']})" for row in report.top_gmail_countries)
        or "none"
    )
    groups = ", ".join(f"{row['age_group']}: {row['persons']}" for row in report.age_groups) or "none"
    counts = report.accounting
    accounted = (
        f"{counts.get('requested', 0)} requested = {counts.get('published', 0)} published + "
        f"{counts.get('quarantined', 0)} quarantined + {counts.get('rejected', 0)} rejected + "
        f"{counts.get('erased', 0)} erased + {counts.get('duplicates', 0)} duplicates"
    )
    return "\n".join(
        [
            f"reference date:                {report.reference_date or 'n/a'} (every age group)",
            f"person_key key:                {report.key_fingerprint or 'n/a'} (fingerprint)",
            f"records:                       {accounted}",
            f"total persons:                 {report.total_persons}",
            f"Gmail users in Germany:        {share} of all persons",
            f"top {TOP_COUNTRIES} Gmail countries:        {top}",
            f"Gmail users older than 60:     {report.gmail_over_60}",
            f"age groups:                    {groups}",
            f"quarantined records:           {report.quarantined}",
            f"rejected batches:              {report.rejected_batches}",
            *([_protection_line(report.k_anonymity)] if report.k_anonymity else []),
        ]
    )


def _protection_line(counts: dict[str, int | None]) -> str:
    """How the analytics layer publishes persons (k-anonymity), in one line."""
    return (
        f"published k-anonymous (k={counts['k']}):  {counts['exact_persons']} exact, "
        f"{counts['generalised_persons']} generalised, {counts['suppressed_persons']} suppressed; "
        f"smallest class {counts['smallest_class']}"
    )


def write_report_files(report: Report, folder: Path, context: dict[str, Any] | None = None) -> list[Path]:
    """Write report.md, report.json and the CSVs into `folder`; return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    files = {"report.md": render_markdown(report, context), **render_csvs(report)}
    for name, text in files.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    json_path = folder / "report.json"
    json_path.write_bytes(render_json(report, context))
    return [*written, json_path]
