"""The report page: one self-contained HTML file (charts inline as SVG, no script, no external URL).

`render_page` is pure (report, trend and charts in, HTML text out); `write_report_page` writes the page and
each chart as PNG and SVG beside report.json in the run's report folder.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flows.report.charts import CHARTS, Chart, RunQuality, render_charts
from flows.report.render import Report, summary_rows

PAGE_NAME = "report.html"
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
body { padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 0.5rem 0; } figure svg { max-width: 100%; height: auto; }
.meta td:first-child, .summary td:first-child { color: #555; }
"""


def _cell(value: Any) -> str:
    if value is None:
        return "<td>n/a</td>"
    if isinstance(value, bool):
        return f"<td>{str(value).lower()}</td>"
    if isinstance(value, int | float):
        text = f"{value:.2f}" if isinstance(value, float) else str(value)
        return f'<td class="number">{text}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(name)}</th>" for name in headers)
    body = "".join("<tr>" + "".join(_cell(value) for value in row) + "</tr>" for row in rows)
    classes = f' class="{css}"' if css else ""
    return f"<table{classes}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _chart_tables(report: Report, trend: Sequence[RunQuality]) -> dict[str, str]:
    """The figures behind each chart, as a table under it."""
    share = report.gmail_germany_share_pct
    return {
        "age_groups": _table(
            ["age group", "persons"], [[row["age_group"], row["persons"]] for row in report.age_groups]
        ),
        "top_gmail_countries": _table(
            ["rank", "country", "Gmail users"],
            [
                [rank, row["country"], row["gmail_users"]]
                for rank, row in enumerate(report.top_gmail_countries, 1)
            ],
        ),
        "gmail_germany_share": _table(
            ["measure", "value"],
            [["Gmail users in Germany, % of all persons", share], ["all persons", report.total_persons]],
        ),
        "quality_trend": _table(
            ["run", "started", "batches", "merged", "rejected", "held back", "merged %", "quarantined %"],
            [
                [
                    run.run_id,
                    run.started_at,
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


def render_page(
    report: Report,
    trend: Sequence[RunQuality],
    charts: Sequence[Chart],
    context: dict[str, Any] | None = None,
    docs_link: str | None = None,
) -> str:
    """The report page's HTML (aggregates only; every value escaped)."""
    context = context or {}
    run_id = context.get("run_id", "")
    meta = _table(["run", ""], [[name, value] for name, value in context.items()], "meta")
    links = [
        f'<a href="{html.escape(chart.name)}.png">{html.escape(chart.title)} (PNG)</a>' for chart in charts
    ]
    if docs_link:
        links.insert(0, f'<a href="{html.escape(docs_link)}">Validation data docs of this run</a>')
    tables = _chart_tables(report, trend)
    sections = [
        f'<section id="{html.escape(chart.name)}"><h2>{html.escape(chart.title)}</h2>'
        f'<figure role="img" aria-label="{html.escape(chart.title)}">{chart.inline_svg()}</figure>'
        f"{tables.get(chart.name, '')}</section>"
        for chart in charts
    ]
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>Persons report {html.escape(str(run_id))}</title>",
            f"<style>{_STYLE}</style></head><body>",
            "<h1>Persons report</h1>",
            meta,
            "<p>" + " &middot; ".join(links) + "</p>",
            "<h2>Summary</h2>",
            _table(["metric", "value"], summary_rows(report), "summary"),
            *sections,
            "</body></html>",
            "",
        ]
    )


def write_report_page(
    report: Report,
    trend: Sequence[RunQuality],
    folder: Path,
    context: dict[str, Any] | None = None,
    docs_link: str | None = None,
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
    page.write_text(render_page(report, trend, charts, context, docs_link), encoding="utf-8")
    return [page, *written]


def report_page_markdown(reports_location: str, run_id: str) -> str:
    """The artifact's text: a link to the page and to each PNG wherever the report folder was uploaded."""

    def link(location: str) -> str:  # a clickable form of a file path or an s3:// URL
        return Path(location).as_uri() if location.startswith("/") else location

    page = f"{reports_location}/{PAGE_NAME}"
    images = "\n".join(f"- [{title}]({link(f'{reports_location}/{name}.png')})" for name, title in CHARTS)
    heading = f"# Persons report\n\n[Report page of run {run_id}]({link(page)})\n\n`{page}`"
    return f"{heading}\n\nCharts (PNG):\n{images}\n"


def publish_report_page(reports_location: str, run_id: str) -> None:
    """The Prefect artifact that links the run's report page (uploaded beside the data docs)."""
    from prefect.artifacts import create_markdown_artifact  # noqa: PLC0415 - only in a flow run

    create_markdown_artifact(
        key="persons-report-page",
        markdown=report_page_markdown(reports_location, run_id),
        description="Report page of this run: age groups, Gmail countries, Gmail in Germany, quality trend",
    )
