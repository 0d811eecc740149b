"""The data docs and the report page, opened in headless Chromium with no host but 127.0.0.1 reachable.

One pair of runs serves every test: a run whose only batch the gate rejects, then a run that publishes two
batches (so the quality trend has two points and the docs show a failed and a passing validation).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from faker_twin.server import FakerTwin, TwinFaults
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
    """The two runs' data folder, run ids and per-batch verdicts."""

    data_dir: Path
    rejected_run: str
    published_run: str
    report: dict[str, object]

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
    from flows.pipeline import persons_pipeline

    data_dir = tmp_path_factory.mktemp("browser") / "data"
    common = {
        "data_dir": str(data_dir),
        "reference_date": REFERENCE_DATE,
        "page_size": 500,
        "pages_per_batch": 2,
    }
    with FakerTwin() as twin:
        twin.set_faults(TwinFaults(pii_country_rate=0.05))  # emails in the country field: the gate says no
        first = persons_pipeline(api_url=twin.url, total=1000, seed=301, return_state=True, **common)
        assert first.is_failed(), first.message
        twin.set_faults(TwinFaults())
        report_path = data_dir / "report.json"
        second = persons_pipeline(
            api_url=twin.url, total=2000, seed=302, report_json=str(report_path), return_state=True, **common
        )
        assert second.is_completed(), second.message
    report = json.loads(report_path.read_text())
    run_ids = sorted(
        (path for path in (data_dir / "reports").iterdir()), key=lambda path: path.stat().st_mtime
    )
    assert [path.name for path in run_ids][-1] == report["run"]["run_id"]
    yield Runs(data_dir, run_ids[0].name, run_ids[-1].name, report)


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
    assert colours(screenshot(page, tmp_path)) > 16


def test_the_report_page_shows_the_charts_of_the_run(runs: Runs, tmp_path: Path) -> None:
    page = runs.page(runs.published_run)
    dom = dump_dom(page)
    for name, title in CHARTS:
        section = re.search(rf'<section id="{name}">(.*?)</section>', dom, re.DOTALL)
        assert section and "<svg" in section.group(1) and title in section.group(1), name
    age_chart = re.search(r'<section id="age_groups">.*?</svg>', dom, re.DOTALL)
    assert age_chart
    for row in runs.report["age_groups"]:  # type: ignore[attr-defined]
        assert row["age_group"] in age_chart.group(0) and f">{row['persons']}<" in age_chart.group(0)
    share = runs.report["gmail_germany_share_pct"]
    assert f"{share:.2f} %" in dom
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
    page = runs.page(runs.published_run).resolve()
    assert f"]({page.as_uri()})" in str(artifact.data)
    for name, _ in CHARTS:
        assert f"]({page.with_name(f'{name}.png').as_uri()})" in str(artifact.data)
