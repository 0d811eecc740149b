"""The data docs and the report page, opened in headless Chromium with no host but 127.0.0.1 reachable.

Three runs serve every test: a run whose only batch the gate rejects, then a run that publishes two batches
(so the quality trend has two points and the docs show a failed and a passing validation), then the same run
again, which has nothing to fetch and so nothing to validate.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from faker_twin import FakerTwin, TwinFaults
from PIL import Image

from flows.gate.offline_docs import (
    SITE_VENDOR,
    asset_paths,
    css_references,
    html_references,
    is_external,
    load_lock,
)
from flows.gate.validation import load_suite_definition
from flows.report.charts import CHARTS
from tests.browser import colours, dump_dom, screenshot
from tests.integration.conftest import REFERENCE_DATE

_ROW = re.compile(r'<tr\b[^>]*\bdata-index="\d+"[^>]*>(.*?)</tr>', re.DOTALL)


@dataclass(frozen=True)
class Runs:
    """The runs' data folder, run ids, per-batch verdicts and what each run printed."""

    data_dir: Path
    rejected_run: str
    published_run: str
    report: dict[str, Any]
    idle_run: str  # the rerun that had nothing to fetch
    printed: dict[str, str]

    def batches(self, run_id: str) -> list[tuple[str, str, str | None]]:
        with duckdb.connect(str(self.data_dir / "warehouse.duckdb"), read_only=True) as connection:
            return connection.execute(
                "select batch_id, status, failed_expectations from landing.batches where run_id = ? "
                "order by batch_id",
                [run_id],
            ).fetchall()

    def docs(self, run_id: str) -> Path:
        return self.data_dir / "data_docs" / run_id

    def page(self, run_id: str) -> Path:
        return self.data_dir / "reports" / run_id / "report.html"


@pytest.fixture(scope="module")
def runs(prefect_client: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    from flows.run.pipeline import persons_pipeline

    data_dir = tmp_path_factory.mktemp("browser") / "data"
    common = {
        "data_dir": str(data_dir),
        "reference_date": REFERENCE_DATE,
        "page_size": 500,
        "pages_per_batch": 2,
    }
    printed: list[str] = []

    def run(**parameters: Any) -> Any:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            state = persons_pipeline(return_state=True, **common, **parameters)
        printed.append(out.getvalue())
        return state

    with FakerTwin() as twin:
        twin.set_faults(TwinFaults(pii_country_rate=0.05))  # emails in the country field: the gate says no
        first = run(api_url=twin.url, total=1000, seed=301)
        assert first.is_failed(), first.message
        twin.set_faults(TwinFaults())
        report_path = data_dir / "report.json"
        second = run(api_url=twin.url, total=2000, seed=302, report_json=str(report_path))
        assert second.is_completed(), second.message
        report = json.loads(report_path.read_text())
        third = run(api_url=twin.url, total=2000, seed=302)  # every page is published: nothing to fetch
        assert third.is_completed(), third.message
    run_ids = [
        path.name for path in sorted((data_dir / "reports").iterdir(), key=lambda path: path.stat().st_mtime)
    ]
    assert len(run_ids) == 3 and run_ids[1] == report["run"]["run_id"]
    yield Runs(data_dir, run_ids[0], run_ids[1], report, run_ids[2], dict(zip(run_ids, printed, strict=True)))


def test_no_page_of_the_docs_or_the_report_references_another_host(runs: Runs) -> None:
    pages = [
        *runs.data_dir.joinpath("data_docs").rglob("*.html"),
        *runs.data_dir.joinpath("reports").rglob("*.html"),
    ]
    sheets = list(runs.data_dir.joinpath("data_docs").rglob("*.css"))
    assert len(pages) >= 10 and len(sheets) >= 10  # both runs' sites, the docs home, dbt's docs, 2 reports
    for page in pages:
        external = [ref for ref in html_references(page.read_text(encoding="utf-8")) if is_external(ref)]
        assert external == [], page
    for sheet in sheets:
        assert [ref for ref in css_references(sheet.read_text(encoding="utf-8")) if is_external(ref)] == [], (
            sheet
        )
    for run_id in (runs.rejected_run, runs.published_run):
        assert not re.search(r"https?://", runs.page(run_id).read_text(encoding="utf-8"))  # not even as text
    # every vendored asset a page loads is in the site, and is the file the lock pins
    site = runs.docs(runs.published_run)
    loaded = {
        (page.parent / ref).resolve()
        for page in site.rglob("*.html")
        for ref in html_references(page.read_text(encoding="utf-8"))
        if f"{SITE_VENDOR}/" in ref
    }
    assert loaded == {(site / SITE_VENDOR / path).resolve() for path in asset_paths(load_lock()).values()}
    assert all(path.is_file() for path in loaded)


def test_the_data_docs_index_lists_the_runs_validations_offline(runs: Runs, tmp_path: Path) -> None:
    index = runs.docs(runs.published_run) / "index.html"
    dom = dump_dom(index)
    rows = [row for row in _ROW.findall(dom) if "validations/" in row or runs.published_run in row]
    batches = runs.batches(runs.published_run)
    assert len(batches) == 2 and {status for _, status, _ in batches} == {"merged"}
    listed = [
        batch_id for batch_id, _, _ in batches if any(f"{runs.published_run}-{batch_id}" in r for r in rows)
    ]
    assert listed == [batch_id for batch_id, _, _ in batches]  # the table lists each validated batch
    assert colours(screenshot(index, tmp_path)) > 16

    # Control: the same page with GX's CDN references stays empty in this browser, so the copies made it work.
    online = index.read_text(encoding="utf-8")
    for url, path in asset_paths(load_lock()).items():
        online = online.replace(f"{SITE_VENDOR}/{path}", url)
    control = index.with_name("index-cdn.html")
    control.write_text(online, encoding="utf-8")
    try:
        assert _ROW.findall(dump_dom(control)) == []
    finally:
        control.unlink()


def test_a_validation_page_shows_every_expectation_and_the_failed_ones(runs: Runs, tmp_path: Path) -> None:
    expectations = len(load_suite_definition()["expectations"])
    [(batch_id, status, failed)] = runs.batches(runs.rejected_run)
    assert status == "rejected" and failed
    [page] = runs.docs(runs.rejected_run).glob(f"validations/*/{runs.rejected_run}-{batch_id}/*/*.html")
    dom = dump_dom(page)
    results = [row for row in _ROW.findall(dom) if "fa-check-circle" in row or "fa-times" in row]
    assert len(results) == expectations  # bootstrap-table rendered one row per expectation
    unsuccessful = re.search(r"Unsuccessful Expectations</div></td><td[^>]*><div[^>]*>(\d+)<", dom)
    assert unsuccessful and int(unsuccessful.group(1)) == len(failed.split(","))
    assert sum("fa-times" in row for row in results) == len(failed.split(","))
    for item in load_suite_definition()["expectations"]:  # by the names the run prints, not GX's template
        assert f"{item['meta']['name']}:" in dom, item["meta"]["name"]
    assert f"Data asset: landing.persons, batch {batch_id}" in dom and "Data asset: None" not in dom
    assert colours(screenshot(page, tmp_path, (1400, 1400))) > 16


def test_the_report_page_shows_the_charts_of_the_run(runs: Runs, tmp_path: Path) -> None:
    page = runs.page(runs.published_run)
    dom = dump_dom(page)
    for name, title in CHARTS:
        section = re.search(rf'<section id="{name}">(.*?)</section>', dom, re.DOTALL)
        assert section and "<svg" in section.group(1) and title in section.group(1), name
    age_chart = re.search(r'<section id="age_groups">.*?</svg>', dom, re.DOTALL)
    assert age_chart
    for row in runs.report["age_groups"]:  # type: ignore[attr-defined]
        assert row["age_group"] in age_chart.group(0) and f">{row['persons']:,}<" in age_chart.group(0)
    share = runs.report["gmail_germany_share_pct"]
    assert f"{share:.2f}%" in dom
    trend = re.search(r'<section id="quality_trend">(.*?)</section>', dom, re.DOTALL)
    assert trend
    assert trend.group(1).index(runs.rejected_run) < trend.group(1).index(runs.published_run)  # oldest first
    assert colours(screenshot(page, tmp_path, (1200, 2400))) > 16
    for name, _ in CHARTS:
        image = Image.open(page.with_name(f"{name}.png"))
        assert image.size == (792, 396), name
        assert colours(page.with_name(f"{name}.png").read_bytes()) > 4, name
        assert page.with_name(f"{name}.svg").read_text().lstrip().startswith(("<?xml", "<svg")), name


def test_the_prefect_artifact_links_the_report_page_and_its_charts(runs: Runs) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[runs.published_run]),
                key=ArtifactFilterKey(any_=["persons-report-page"]),
            )
        )
    folder = f"/reports/{runs.published_run}"  # as a file:// link, or the local pages server's http:// link
    for name in ("report.html", *(f"{name}.png" for name, _ in CHARTS)):
        assert re.search(rf"\]\((?:file|http)://[^)\s]*{folder}/{re.escape(name)}\)", str(artifact.data)), (
            name
        )


SECTIONS = (
    "answers",
    "gmail_germany_share",
    "top_gmail_countries",
    "age_groups",
    "quality",
    "quality_trend",
    "k_anonymity",
    "metadata",
)


def section_order(dom: str) -> list[str]:
    """The ids of the page's sections in the order of the DOM."""
    found = re.findall(r'<section id="([a-z_0-9]+)"', dom)
    return [name for name in found if name in (*SECTIONS, "failure")]


def test_the_report_page_answers_first_and_keeps_the_metadata_last(runs: Runs, tmp_path: Path) -> None:
    page = runs.page(runs.published_run)
    dom = dump_dom(page)
    assert section_order(dom) == list(SECTIONS)  # answers, their charts, quality, protection, metadata
    report = runs.report
    answers = dom[dom.index('<section id="answers">') : dom.index('<section id="gmail_germany_share">')]
    assert f"{report['total_persons']:,}</span>persons are published" in answers
    assert (
        f"{report['gmail_germany_share_pct']:.2f}%</span>of all persons are Gmail users in Germany" in answers
    )
    assert f"{report['gmail_over_60']:,}</span>Gmail users are older than 60" in answers
    for row in report["top_gmail_countries"]:
        assert f'{row["country"]} <span class="count">{row["gmail_users"]:,}</span>' in answers
    # the twin's birthdays start in 1900: persons older than 110 exist; the page says so beside the answers
    old = sum(
        row["persons"] for row in report["age_groups"] if row["age_group"] in ("[111-120]", "[121-130]")
    )
    assert old > 0 and f"{old:,} persons (" in answers and "older than 110" in answers
    protection = dom[dom.index('<section id="k_anonymity">') : dom.index('<section id="metadata">')]
    assert f"{report['k_anonymity']['k']}-anonymous" in protection
    quality = dom[dom.index('<section id="quality">') : dom.index('<section id="k_anonymity">')]
    assert f"{report['quarantined']:,} persons are quarantined" in quality
    assert "records quarantined, % of received" in quality  # the trend's records, labelled apart
    assert 'role="alert"' not in dom
    assert colours(screenshot(page, tmp_path, (1200, 4800))) > 16


def test_a_failed_runs_page_opens_with_a_banner_naming_the_batch_and_reason(
    runs: Runs, tmp_path: Path
) -> None:
    [(batch_id, status, failed)] = runs.batches(runs.rejected_run)
    assert status == "rejected" and failed
    page = runs.page(runs.rejected_run)
    dom = dump_dom(page)
    assert section_order(dom)[:2] == ["failure", "answers"] and section_order(dom)[-1] == "metadata"
    banner = dom[dom.index('<section id="failure"') : dom.index('<section id="answers">')]
    assert "This run failed: 1 batch not published" in banner
    assert f"<td>{batch_id}</td>" in banner
    assert f"rejected by the validation gate (failed: {failed.replace(',', ', ')})" in banner
    link = re.search(r'href="([^"]+)">Validation pages of this run', banner)
    assert link and (page.parent / link.group(1)).resolve() == (runs.docs(runs.rejected_run) / "index.html")
    assert colours(screenshot(page, tmp_path, (1200, 1600))) > 16


def test_one_rounded_share_in_the_page_report_json_stdout_and_the_prefect_table(runs: Runs) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    share = runs.report["gmail_germany_share_pct"]
    assert share == round(share, 2)  # report.json holds the rounded figure
    shown = f"{share:.2f}%"
    assert (
        f"{shown}</span>of all persons are Gmail users in Germany"
        in runs.page(runs.published_run).read_text()
    )
    assert f"Gmail users in Germany:        {shown} of all persons" in runs.printed[runs.published_run]
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[runs.published_run]),
                key=ArtifactFilterKey(any_=["persons-report"]),
            )
        )
    table = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    rows = {row["figure"]: row["value"] for row in table}
    assert rows["Gmail users in Germany, share of all persons"] == shown
    assert rows["Persons published"] == f"{runs.report['total_persons']:,}"


def test_the_validation_index_lists_each_run_with_date_verdict_and_failed_names(
    runs: Runs, tmp_path: Path
) -> None:
    home = runs.data_dir / "data_docs" / "index.html"
    dom = dump_dom(home)
    rows = re.findall(r"<tr>(.*?)</tr>", dom, re.DOTALL)[1:]
    listed = {
        run_id: row for row in rows for run_id in (runs.rejected_run, runs.published_run) if run_id in row
    }
    assert len(rows) == 2 and set(listed) == {
        runs.rejected_run,
        runs.published_run,
    }  # not dbt, not the idle run
    assert runs.idle_run not in dom
    assert not [row for row in rows if 'href="dbt/' in row]
    assert 'href="dbt/index.html"' in dom  # the model docs, linked apart
    for run_id, row in listed.items():
        assert re.search(r"<td>\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC</td>", row), run_id
        links = re.findall(r'href="([^"]+)"', row)
        assert f"{run_id}/index.html" in links
        assert len(links) == 1 + len(runs.batches(run_id))  # the run's site and each batch's page
        assert all((home.parent / link).is_file() for link in links), links
    [(_, _, failed)] = runs.batches(runs.rejected_run)
    assert '<span class="failed">failed</span>' in listed[runs.rejected_run]
    for name in failed.split(","):
        assert f"<code>{name}</code>" in listed[runs.rejected_run]
    assert '<span class="passed">passed</span>' in listed[runs.published_run]
    assert rows.index(listed[runs.published_run]) < rows.index(listed[runs.rejected_run])  # newest first
    assert colours(screenshot(home, tmp_path, (1200, 700))) > 16


def test_a_run_with_nothing_to_validate_prints_no_docs_path(runs: Runs) -> None:
    assert "data docs: " in runs.printed[runs.published_run]
    printed = runs.printed[runs.idle_run]
    assert "report page: " in printed and "data docs" not in printed
    assert not runs.docs(runs.idle_run).exists()
    page = runs.page(runs.idle_run).read_text(encoding="utf-8")
    assert "Validation pages of this run" not in page and "Validation runs (all)" in page
