"""The report page and its charts: pure rendering (report in, PNG/SVG/HTML out), checked on fixed figures."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from flows.gate.offline_docs import html_references, is_external
from flows.report.charts import CHARTS, FIGURE_SIZE, PNG_DPI, RunQuality, render_charts
from flows.report.page import PAGE_NAME, render_page, report_page_markdown, write_report_page
from flows.report.render import Report

REPORT = Report(
    total_persons=1200,
    gmail_germany_share_pct=2.75,
    top_gmail_countries=[
        {"country": "Germany", "gmail_users": 33},
        {"country": "France", "gmail_users": 21},
        {"country": "Côte d'Ivoire", "gmail_users": 7},
    ],
    gmail_over_60=97,
    age_groups=[
        {"age_group": "[21-30]", "persons": 610},
        {"age_group": "[31-40]", "persons": 590},
    ],
    quarantined=12,
    reference_date="2026-06-15",
    key_fingerprint="0123456789abcdef",
)
TREND = [
    RunQuality("run-aaaaaaaa", "2026-06-14T10:00:00", 1, 0, 1, 0, 0.0, 4.0),
    RunQuality("run-bbbbbbbb", "2026-06-15T10:00:00", 3, 3, 0, 0, 100.0, 1.5),
]
EMPTY = Report(
    total_persons=0,
    gmail_germany_share_pct=None,
    top_gmail_countries=[],
    gmail_over_60=0,
    age_groups=[],
    quarantined=0,
)


@pytest.fixture(scope="module")
def charts() -> list:
    return render_charts(REPORT, TREND)


def distinct_colours(png: bytes) -> int:
    found = Image.open(io.BytesIO(png)).convert("RGB").getcolors(maxcolors=4096)
    return 4096 if found is None else len(found)


def test_four_charts_as_png_and_svg(charts: list) -> None:
    assert [chart.name for chart in charts] == [name for name, _ in CHARTS]
    for chart in charts:
        image = Image.open(io.BytesIO(chart.png))
        assert image.format == "PNG"
        assert image.size == (round(FIGURE_SIZE[0] * PNG_DPI), round(FIGURE_SIZE[1] * PNG_DPI))
        assert distinct_colours(chart.png) > 4, chart.name  # drawn, not blank
        assert chart.svg.lstrip().startswith("<?xml") and "<!DOCTYPE" not in chart.svg
        assert chart.title in chart.svg


def test_the_charts_carry_the_reports_figures_as_text(charts: list) -> None:
    by_name = {chart.name: chart.svg for chart in charts}
    for row in REPORT.age_groups:
        assert row["age_group"] in by_name["age_groups"] and f">{row['persons']}<" in by_name["age_groups"]
    for row in REPORT.top_gmail_countries:
        country = row["country"].replace("'", "&#x27;")
        assert country in by_name["top_gmail_countries"] or row["country"] in by_name["top_gmail_countries"]
        assert f">{row['gmail_users']}<" in by_name["top_gmail_countries"]
    assert "2.75 %" in by_name["gmail_germany_share"]
    assert "run-bbbb" in by_name["quality_trend"] and "2026-06-15 10:00" in by_name["quality_trend"]


def test_the_same_figures_give_the_same_bytes(charts: list) -> None:
    again = render_charts(REPORT, TREND)
    assert [(c.png, c.svg) for c in again] == [(c.png, c.svg) for c in charts]


def test_a_report_without_figures_still_renders() -> None:
    empty = render_charts(EMPTY, [])
    texts = " ".join(chart.svg for chart in empty)
    for message in ("no age group with at least k persons", "no persons published", "no run recorded yet"):
        assert message in texts
    assert all(distinct_colours(chart.png) > 1 for chart in empty)


def test_the_page_is_self_contained(charts: list) -> None:
    page = render_page(
        REPORT, TREND, charts, {"run_id": "run-bbbbbbbb"}, "../../data_docs/run-bbbbbbbb/index.html"
    )
    assert page.count("<svg") == 4 and "<script" not in page
    assert not re.search(r"https?://", page)  # no URL at all, not even an SVG namespace
    references = html_references(page)
    assert not [ref for ref in references if is_external(ref)]
    assert "../../data_docs/run-bbbbbbbb/index.html" in references
    assert {f"{name}.png" for name, _ in CHARTS} <= set(references)
    for run in TREND:
        assert f"<td>{run.run_id}</td>" in page


def test_values_are_escaped(charts: list) -> None:
    hostile = Report(
        **{**REPORT.to_dict(), "top_gmail_countries": [{"country": "<script>x</script>", "gmail_users": 5}]}
    )
    page = render_page(hostile, TREND, charts, {"run_id": "<b>run</b>"})
    assert "<script>" not in page and "&lt;script&gt;" in page and "<b>run</b>" not in page


def test_the_page_and_charts_are_written_beside_the_report(tmp_path: Path) -> None:
    written = write_report_page(REPORT, TREND, tmp_path, {"run_id": "r1"})
    names = {path.name for path in written}
    assert names == {PAGE_NAME} | {f"{name}.{suffix}" for name, _ in CHARTS for suffix in ("png", "svg")}
    assert all(path.is_file() and path.stat().st_size > 500 for path in written)


def test_the_artifact_links_the_page_and_the_charts() -> None:
    local = report_page_markdown("/data/reports/r1", "r1")
    assert "(file:///data/reports/r1/report.html)" in local
    assert "(file:///data/reports/r1/age_groups.png)" in local
    remote = report_page_markdown("s3://bucket/persons/reports/r1", "r1")
    assert "(s3://bucket/persons/reports/r1/report.html)" in remote
