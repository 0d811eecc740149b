"""The report page: one self-contained HTML file (charts inline as SVG, no script, no external URL).

`render_page` is pure (report, trend, charts and the run's problems in, HTML text out); `write_report_page`
writes the page and each chart as PNG and SVG beside report.json in the run's report folder. The page reads
top down as a stakeholder asks: did the run work (a failure banner if not), the four answers in words, their
charts, then data quality, then how the published persons are protected, and the run's metadata last.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flows.report.charts import CHARTS, TREND_HELD_BACK, TREND_MERGED, Chart, RunQuality, render_charts
from flows.report.render import TOP_COUNTRIES, Report, answer_rows, number, percent, visible

PAGE_NAME = "report.html"
# Older than this at the reference date is beyond any documented human life: the source's data, flagged.
IMPLAUSIBLE_AGE = 110
_PROBLEM = re.compile(r"^batch (\S+) (.+)$", re.DOTALL)
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
body { padding: 0 1rem; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
p.lead { color: #444; margin-top: 0.2rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f3f5f8; } td.number { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 0.5rem 0; } figure svg { max-width: 100%; height: auto; }
figcaption { color: #444; font-size: 0.9rem; }
.answers { display: grid; grid-template-columns: repeat(auto-fit, minmax(13rem, 1fr)); gap: 0.8rem; }
.answer { border: 1px solid #d6dce6; border-radius: 6px; padding: 0.7rem 0.9rem; background: #f8fafc; }
.answer .figure { font-size: 1.7rem; font-weight: 650; color: #1f3f73; display: block; }
.answer ol { margin: 0.2rem 0; padding-left: 1.3rem; font-size: 1.1rem; font-weight: 650; color: #1f3f73; }
.answer ol .count { font-weight: 400; color: #444; font-size: 0.95rem; }
.banner { border: 2px solid #b3261e; background: #fdecea; border-radius: 6px; padding: 0.6rem 1rem; }
.banner h2 { margin-top: 0.2rem; border: none; color: #8c1d18; }
.banner td:first-child { white-space: nowrap; }
.caveat { border-left: 4px solid #e0a100; background: #fff8e1; padding: 0.5rem 0.9rem; margin: 1rem 0; }
.meta td:first-child { color: #555; }
"""


@dataclass(frozen=True)
class Links:
    """Where the page links to, relative to the page: this run's validation pages, every run's index."""

    run_docs: str | None = None
    all_docs: str | None = None


def _cell(value: Any) -> str:
    if value is None:
        return "<td>n/a</td>"
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, int):
        return f'<td class="number">{number(value)}</td>'
    if isinstance(value, float):
        return f'<td class="number">{percent(value)}</td>'  # every float the page shows is a percentage
    return f"<td>{html.escape(visible(str(value)))}</td>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name in headers)
    body = "".join("<tr>" + "".join(_cell(value) for value in row) + "</tr>" for row in rows)
    classes = f' class="{css}"' if css else ""
    thead = f"<thead><tr>{head}</tr></thead>" if any(headers) else ""
    return f"<table{classes}>{thead}<tbody>{body}</tbody></table>"


def _text(value: Any) -> str:
    return html.escape(visible(str(value)))


def _when(timestamp: str) -> str:
    """An ISO timestamp as `YYYY-MM-DD HH:MM UTC` (as it came, if it is none)."""
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return _text(timestamp)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)  # runs keep UTC
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def batch_problems(problems: Sequence[str]) -> list[tuple[str, str]]:
    """The run's problems as (batch, reason); a problem that names no batch keeps its whole text."""
    split = [_PROBLEM.match(problem) for problem in problems]
    return [(m.group(1), m.group(2)) if m else ("", text) for m, text in zip(split, problems, strict=True)]


def failure_banner(problems: Sequence[str], links: Links) -> str:
    """The run failed: which batches were not published and why, before anything else."""
    if not problems:
        return ""
    rows = batch_problems(problems)
    docs = (
        f' <a href="{html.escape(links.run_docs)}">Validation pages of this run</a>.'
        if links.run_docs
        else ""
    )
    return (
        '<section id="failure" class="banner" role="alert">'
        f"<h2>This run failed: {number(len(rows))} batch{'es' if len(rows) != 1 else ''} "
        "not published</h2>"
        + _table(["batch", "why it was not published"], rows)
        + "<p>The figures below are those of the published data: a batch this run did not publish is not "
        f"in them (its records count as rejected).{docs}</p></section>"
    )


def over_age(report: Report, age: int = IMPLAUSIBLE_AGE) -> int:
    """Persons in the age groups that start above `age` (groups are `[lo-hi]`, lo and hi inclusive)."""
    return sum(
        row["persons"]
        for row in report.age_groups
        if int(str(row["age_group"]).strip("[]").split("-")[0]) > age
    )


def age_caveat(report: Report) -> str:
    """A visible caveat where the source's birthdays make persons older than anyone lives."""
    implausible = over_age(report)
    if not implausible:
        return ""
    share = percent(100.0 * implausible / report.total_persons) if report.total_persons else "n/a"
    return (
        '<p class="caveat" id="age_caveat"><strong>Caveat:</strong> '
        f"{number(implausible)} persons ({share} of all persons) are older than {IMPLAUSIBLE_AGE} at the "
        "reference date, which no real population is: their birthdays are the source's (the Faker API "
        "draws them from a wide range). The age groups and the Gmail users older than 60 count them as the "
        "source gives them.</p>"
    )


def answers(report: Report) -> str:
    """The four answers, each a figure and a sentence."""
    when = f"at the reference date {_text(report.reference_date)}" if report.reference_date else ""
    top = report.top_gmail_countries
    countries = "".join(
        f'<li>{_text(row["country"])} <span class="count">{number(row["gmail_users"])}</span></li>'
        for row in top
    )
    fewer = "" if len(top) == TOP_COUNTRIES else f" (only {len(top)} have enough to be shown)"
    top_answer = (
        f"<ol>{countries}</ol>are the countries with the most Gmail users (their Gmail users){fewer}."
        if top
        else '<span class="figure">none</span>no country has enough Gmail users to be shown.'
    )
    cards = [
        f'<span class="figure">{number(report.total_persons)}</span>persons are published.',
        f'<span class="figure">{percent(report.gmail_germany_share_pct)}</span>of all persons are Gmail '
        "users in Germany."
        if report.gmail_germany_share_pct is not None
        else '<span class="figure">n/a</span>no share of Gmail users in Germany: no person is published.',
        top_answer,
        f'<span class="figure">{number(report.gmail_over_60)}</span>Gmail users are older than 60 {when}.',
    ]
    items = "".join(f'<div class="answer">{card}</div>' for card in cards)
    return (
        '<section id="answers"><h2>The answers</h2>'
        f'<div class="answers">{items}</div>{age_caveat(report)}</section>'
    )


def _captions(report: Report) -> dict[str, str]:
    """What each chart shows, in words, under it."""
    when = f" at the reference date {_text(report.reference_date)}" if report.reference_date else ""
    return {
        "gmail_germany_share": "Gmail users (gmail.com or googlemail.com) whose country code is DE, as a "
        f"share of all {number(report.total_persons)} published persons.",
        "top_gmail_countries": f"The {TOP_COUNTRIES} countries with the most Gmail users; a country with "
        "fewer than k Gmail users is not shown.",
        "age_groups": f"Published persons per 10-year age group{when}; a group of fewer than k persons is "
        "withheld.",
        "quality_trend": f"Per run, oldest first: {TREND_MERGED}, and {TREND_HELD_BACK}. These are records "
        "counted in each run (batches later rejected included); the persons quarantined above are counted "
        "once, in the published data.",
    }


def _chart_tables(report: Report, trend: Sequence[RunQuality]) -> dict[str, str]:
    """The figures behind each chart, as a table under it."""
    total = report.total_persons
    return {
        "age_groups": _table(
            ["age group", "persons", "share of all persons"],
            [
                [row["age_group"], row["persons"], 100.0 * row["persons"] / total if total else None]
                for row in report.age_groups
            ],
        ),
        "top_gmail_countries": _table(
            ["rank", "country", "Gmail users"],
            [
                [rank, row["country"], row["gmail_users"]]
                for rank, row in enumerate(report.top_gmail_countries, 1)
            ],
        ),
        "gmail_germany_share": _table(
            ["figure", "value"],
            [
                ["Gmail users in Germany, share of all persons", report.gmail_germany_share_pct],
                ["Persons published", total],
            ],
        ),
        "quality_trend": _table(
            [
                "run",
                "started",
                "batches",
                "merged",
                "rejected",
                "held back",
                "merged, % of batches",
                "records quarantined, % of received",
            ],
            [
                [
                    run.run_id,
                    run.started_at.replace("T", " "),
                    run.batches,
                    run.merged_batches,
                    run.rejected_batches,
                    run.held_back_batches,
                    run.merged_pct,
                    run.quarantined_pct,
                ]
                for run in trend
            ],
        ),
    }


def _chart_section(chart: Chart, caption: str, table: str) -> str:
    return (
        f'<section id="{html.escape(chart.name)}"><h2>{html.escape(chart.title)}</h2>'
        f'<figure role="img" aria-label="{html.escape(chart.title)}">{chart.inline_svg()}'
        f"<figcaption>{caption}</figcaption></figure>{table}</section>"
    )


def data_quality(report: Report, trend_section: str) -> str:
    """Where every requested record went (published, quarantined with reasons, rejected), then the trend."""
    counts = report.accounting
    waiting = (
        f"{number(report.rejected_batches)} batch{'es are' if report.rejected_batches != 1 else ' is'} not "
        "published: refused by the validation gate, incomplete from the source or held back, and not merged "
        "by a later run."
        if report.rejected_batches
        else "No batch is waiting to be published."
    )
    accounting = _table(
        ["records", "count"],
        [
            ["requested", counts.get("requested")],
            ["published (persons)", counts.get("published")],
            ["quarantined (persons held back, not published)", counts.get("quarantined")],
            ["in rejected batches", counts.get("rejected")],
            ["erased on request", counts.get("erased")],
            ["duplicates of a person already counted", counts.get("duplicates")],
        ],
    )
    reasons = (
        _table(["quarantine reason", "persons"], sorted(report.quarantine_reasons.items()))
        if report.quarantine_reasons
        else "<p>No person is quarantined.</p>"
    )
    return (
        '<section id="quality"><h2>Data quality</h2>'
        f"<p>Of {number(counts.get('requested'))} records requested, {number(counts.get('published'))} "
        f"persons are published, {number(report.quarantined)} persons are quarantined (held back with a "
        f"reason) and {number(counts.get('rejected'))} records were in rejected batches. {waiting}"
        f"</p>{accounting}<h3>Why persons were quarantined</h3>{reasons}</section>{trend_section}"
    )


def protection(report: Report) -> str:
    """How the published persons are protected: k-anonymity, in words and figures."""
    counts = report.k_anonymity
    if not counts:
        return '<section id="k_anonymity"><h2>Privacy: k-anonymity</h2><p>Not recorded.</p></section>'
    smallest = counts.get("smallest_class")
    return (
        '<section id="k_anonymity"><h2>Privacy: k-anonymity</h2>'
        f"<p>The person-level data published for analysis is {counts['k']}-anonymous: every combination of "
        f"gender, age group, country and email domain is shared by at least {counts['k']} persons. "
        "A country or domain too rare is generalised (to its region, or <code>other</code>); a person still "
        "in too small a group is suppressed.</p>"
        + _table(
            ["published persons", "count"],
            [
                ["exact", counts.get("exact_persons")],
                ["generalised", counts.get("generalised_persons")],
                ["suppressed", counts.get("suppressed_persons")],
                ["classes (distinct combinations)", counts.get("classes")],
                ["persons in the smallest class", smallest],
            ],
        )
        + "</section>"
    )


_META_LABELS = {
    "run_id": "run",
    "started_at": "started",
    "reference_date": "reference date (ages)",
    "key_fingerprint": "person_key key (fingerprint)",
    "generation_id": "generation",
    "generation_switched": "generation switched by this run",
    "environment": "environment",
    "warehouse": "warehouse",
    "landing": "landing",
    "data_docs": "data docs",
}


def metadata(context: dict[str, Any], links: Links) -> str:
    """The run's identifiers and where its other outputs are: last, for whoever checks."""
    rows = [
        [_META_LABELS.get(name, name.replace("_", " ")), _when(str(value)) if name == "started_at" else value]
        for name, value in context.items()
    ]
    files = ["report.json", "report.md", "summary.csv", "age_groups.csv", "top_gmail_countries.csv"]
    docs = [
        f'<a href="{html.escape(target)}">{label}</a>'
        for target, label in (
            (links.run_docs, "Validation pages of this run"),
            (links.all_docs, "Validation runs (all)"),
        )
        if target
    ]
    listed = " &middot; ".join([*docs, *(f'<a href="{name}">{name}</a>' for name in files)])
    images = " &middot; ".join(f'<a href="{name}.png">{html.escape(title)}</a>' for name, title in CHARTS)
    return (
        '<section id="metadata"><h2>About this run</h2>'
        f"{_table(['', ''], rows, 'meta')}<p>{listed}</p><p>The charts as PNG: {images}</p></section>"
    )


def render_page(
    report: Report,
    trend: Sequence[RunQuality],
    charts: Sequence[Chart],
    context: dict[str, Any] | None = None,
    links: Links | None = None,
    problems: Sequence[str] = (),
) -> str:
    """The report page's HTML (aggregates only; every value escaped)."""
    context, links = context or {}, links or Links()
    by_name = {chart.name: chart for chart in charts}
    captions, tables = _captions(report), _chart_tables(report, trend)

    def section(name: str) -> str:
        chart = by_name.get(name)
        return _chart_section(chart, captions[name], tables[name]) if chart else ""

    started = f", started {_when(str(context['started_at']))}" if context.get("started_at") else ""
    verdict = "failed" if problems else "published every batch"
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>Persons report {_text(context.get('run_id', ''))}</title>",
            f"<style>{_STYLE}</style></head><body>",
            "<h1>Persons report</h1>",
            f'<p class="lead">The published persons, ages at the reference date '
            f"{_text(report.reference_date or 'n/a')}; this run {verdict}{started}.</p>",
            failure_banner(problems, links),
            answers(report),
            *(section(name) for name in ("gmail_germany_share", "top_gmail_countries", "age_groups")),
            data_quality(report, section("quality_trend")),
            protection(report),
            metadata(context, links),
            "</body></html>",
            "",
        ]
    )


def write_report_page(
    report: Report,
    trend: Sequence[RunQuality],
    folder: Path,
    context: dict[str, Any] | None = None,
    links: Links | None = None,
    problems: Sequence[str] = (),
) -> list[Path]:
    """Write report.html and each chart as <name>.png and <name>.svg into `folder`; return the paths."""
    charts = render_charts(report, trend)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for chart in charts:
        for suffix, content in ((".png", chart.png), (".svg", chart.svg.encode("utf-8"))):
            path = folder / f"{chart.name}{suffix}"
            path.write_bytes(content)
            written.append(path)
    page = folder / PAGE_NAME
    page.write_text(render_page(report, trend, charts, context, links, problems), encoding="utf-8")
    return [page, *written]


def _file_link(location: str) -> str:
    """A clickable form of a file path (an s3:// URL stays as it is)."""
    return Path(location).as_uri() if location.startswith("/") else location


def report_page_markdown(
    reports_location: str, run_id: str, report: Report, link: Callable[[str], str] = _file_link
) -> str:
    """The artifact's text: the answers in words (the UI shows them without opening anything), then links to
    the page and each PNG, made by `link` (the pages server's http address, a presigned S3 link, a file)."""
    page = f"{reports_location}/{PAGE_NAME}"
    answers = "\n".join(f"| {row['figure']} | {row['value']} |" for row in answer_rows(report))
    images = "\n".join(f"- [{title}]({link(f'{reports_location}/{name}.png')})" for name, title in CHARTS)
    return (
        f"# Persons report\n\n| answer | value |\n|---|---|\n{answers}\n\n"
        f"[Report page of run {run_id}]({link(page)})\n\nCharts (PNG):\n{images}\n"
    )


def publish_report_page(
    reports_location: str, run_id: str, report: Report, link: Callable[[str], str] = _file_link
) -> None:
    """The Prefect artifact with the answers and links to the run's report page (uploaded beside the docs)."""
    from prefect.artifacts import create_markdown_artifact  # noqa: PLC0415 - only in a flow run

    create_markdown_artifact(
        key="persons-report-page",
        markdown=report_page_markdown(reports_location, run_id, report, link),
        description="The run's answers, and its report page: age groups, Gmail countries, Gmail in Germany, "
        "quality",
    )
