"""The report page and its charts: pure rendering (report in, PNG/SVG/HTML out), checked on fixed figures."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from flows.gate.offline_docs import html_references, is_external
from flows.report.charts import CHARTS, FIGURE_SIZE, PNG_DPI, RunQuality, render_charts
from flows.report.page import PAGE_NAME, Links, render_page, report_page_markdown, write_report_page
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
    assert "2.75%" in by_name["gmail_germany_share"]
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
        REPORT, TREND, charts, {"run_id": "run-bbbbbbbb"}, Links("../../data_docs/run-bbbbbbbb/index.html")
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
    local = report_page_markdown("/data/reports/r1", "r1", REPORT)
    assert "(file:///data/reports/r1/report.html)" in local
    assert "(file:///data/reports/r1/age_groups.png)" in local
    remote = report_page_markdown("s3://bucket/persons/reports/r1", "r1", REPORT)
    assert "(s3://bucket/persons/reports/r1/report.html)" in remote


def test_the_artifact_carries_the_answers_and_links_that_open() -> None:
    served = report_page_markdown(
        "/data/reports/r1",
        "r1",
        REPORT,
        lambda location: location.replace("/data", "http://127.0.0.1:8765/x"),
    )
    assert "| Persons published |" in served and "| Gmail users older than 60 |" in served
    assert "(http://127.0.0.1:8765/x/reports/r1/report.html)" in served


FULL = Report(
    **{
        **REPORT.to_dict(),
        "total_persons": 30000,
        "gmail_germany_share_pct": 1.2425,
        "gmail_over_60": 1187,
        "age_groups": [
            {"age_group": "[91-100]", "persons": 23000},
            {"age_group": "[101-110]", "persons": 2000},
            {"age_group": "[111-120]", "persons": 3000},
            {"age_group": "[121-130]", "persons": 2000},
        ],
        "quarantined": 421,
        "quarantine_reasons": {"birthday_in_future": 300, "country_invalid": 121},
        "rejected_batches": 1,
        "accounting": {
            "requested": 31500,
            "received": 30500,
            "published": 30000,
            "quarantined": 421,
            "rejected": 1000,
            "erased": 0,
            "duplicates": 79,
        },
        "k_anonymity": {
            "k": 5,
            "persons": 30000,
            "exact_persons": 1272,
            "generalised_persons": 28728,
            "suppressed_persons": 0,
            "classes": 727,
            "smallest_class": 5,
        },
    }
)
CONTEXT = {
    "run_id": "run-bbbbbbbb",
    "started_at": "2026-06-15T10:00:00+00:00",
    "reference_date": "2026-06-15",
    "key_fingerprint": "0123456789abcdef",
}
PROBLEM = "batch b00001-3f2a rejected by the validation gate (failed: country_holds_no_email_address)"


def _positions(page: str, *markers: str) -> list[int]:
    return [page.index(marker) for marker in markers]


def test_the_answers_come_first_then_quality_protection_and_metadata_last(charts: list) -> None:
    page = render_page(FULL, TREND, charts, CONTEXT)
    order = _positions(
        page,
        'id="answers"',
        'id="gmail_germany_share"',
        'id="top_gmail_countries"',
        'id="age_groups"',
        'id="quality"',
        'id="quality_trend"',
        'id="k_anonymity"',
        'id="metadata"',
    )
    assert order == sorted(order)
    answers = page[page.index('id="answers"') : page.index('id="gmail_germany_share"')]
    assert "30,000</span>persons are published" in answers  # in words, with thousands separators
    assert "1.24%</span>of all persons are Gmail users in Germany" in answers  # rounded once: 1.2425
    assert "1,187</span>Gmail users are older than 60" in answers
    assert [
        answers.index(row["country"].replace("'", "&#x27;")) for row in FULL.top_gmail_countries
    ] == sorted(answers.index(row["country"].replace("'", "&#x27;")) for row in FULL.top_gmail_countries)
    assert "failure" not in page and 'role="alert"' not in page  # a run that published everything


def test_metadata_states_each_fact_once_in_words(charts: list) -> None:
    page = render_page(FULL, TREND, charts, CONTEXT)
    assert page.count("0123456789abcdef") == 1 and "key_fingerprint" not in page
    assert "reference_date" not in page and "snake_case" not in page
    assert "2026-06-15 10:00 UTC" in page  # when the run started, in words, at the top
    for word in ("records_", "gmail_germany_share_pct", "rejected_batches", "total_persons"):
        assert word not in page.replace('id="gmail_germany_share"', ""), word


def test_a_failed_run_opens_with_a_banner_naming_the_batches_and_reasons(charts: list) -> None:
    page = render_page(FULL, TREND, charts, CONTEXT, Links("../../data_docs/r/index.html"), [PROBLEM])
    banner = page[page.index('id="failure"') : page.index("</section>", page.index('id="failure"'))]
    assert page.index('id="failure"') < page.index('id="answers"')
    assert "This run failed: 1 batch not published" in banner
    assert "<td>b00001-3f2a</td>" in banner
    assert "rejected by the validation gate (failed: country_holds_no_email_address)" in banner
    assert 'href="../../data_docs/r/index.html"' in banner
    lead = page[: page.index('id="failure"')]
    assert "this run failed" in lead


def test_quarantined_persons_and_the_trends_quarantined_records_are_told_apart(charts: list) -> None:
    page = render_page(FULL, TREND, charts, CONTEXT)
    quality = page[page.index('id="quality"') : page.index('id="k_anonymity"')]
    assert "421 persons are quarantined" in quality
    assert "quarantined (persons held back, not published)" in quality
    assert "records quarantined, % of received" in quality  # the trend's figure: records per run
    assert "the persons quarantined above are counted once" in quality
    assert "<td>birthday_in_future</td>" in quality and "1,000" in quality  # reasons; rejected records


def test_k_anonymity_has_its_own_section(charts: list) -> None:
    page = render_page(FULL, TREND, charts, CONTEXT)
    section = page[page.index('id="k_anonymity"') : page.index('id="metadata"')]
    assert "5-anonymous" in section
    assert '<td class="number">28,728</td>' in section and '<td class="number">727</td>' in section


def test_a_caveat_where_persons_are_older_than_anyone_lives(charts: list) -> None:
    page = render_page(FULL, TREND, charts, CONTEXT)
    caveat = page[page.index('id="age_caveat"') : page.index("</p>", page.index('id="age_caveat"'))]
    assert "5,000 persons (16.67% of all persons) are older than 110" in caveat
    assert page.index('id="age_caveat"') < page.index('id="gmail_germany_share"')  # with the answers
    assert 'id="age_caveat"' not in render_page(REPORT, TREND, charts, CONTEXT)  # ages up to 40: none


def test_every_percentage_is_shown_by_the_one_rule(charts: list) -> None:
    page = render_page(FULL, TREND, charts, CONTEXT)
    shown = set(re.findall(r"\b\d+\.\d+%", page))
    assert shown and all(re.fullmatch(r"\d+\.\d{2}%", figure) for figure in shown)
    assert "1.2425" not in page and "1.24%" in page
