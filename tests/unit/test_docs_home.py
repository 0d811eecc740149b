"""The validation site: GX pages that name expectations and the data asset, and one index across runs."""

from __future__ import annotations

import html
import re
from pathlib import Path

import orjson
import pytest

from flows.gate.docs_home import (
    RUN_SUMMARY,
    ValidatedBatch,
    ValidatedRun,
    read_validated_run,
    render_docs_home,
    write_docs_home,
)
from flows.gate.offline_docs import html_references, is_external
from flows.gate.validation import DATA_ASSET, ValidationGate, expectation_description, load_suite_definition
from tests.unit.test_validation import frame

FAILED = ValidatedRun(
    "run-failed",
    "2026-06-14T09:30:00+00:00",
    (
        ValidatedBatch(
            "b00000-aaaa",
            "2026-06-14T09:30:00+00:00",
            False,
            39,
            ("country_looks_like_a_name", "country_holds_no_email_address"),
            "validations/persons_batch/run-failed-b00000-aaaa/t/landing-persons_batch.html",
        ),
        ValidatedBatch(
            "b00001-bbbb",
            "2026-06-14T09:31:00+00:00",
            False,
            39,
            ("country_holds_no_email_address",),
            "validations/persons_batch/run-failed-b00001-bbbb/t/landing-persons_batch.html",
        ),
    ),
)
PASSED = ValidatedRun(
    "run-passed",
    "2026-06-15T10:00:00+00:00",
    (ValidatedBatch("b00000-cccc", "2026-06-15T10:00:00+00:00", True, 39, (), "validations/x.html"),),
)


def rows(page: str) -> list[str]:
    return re.findall(r"<tr>(.*?)</tr>", page, re.DOTALL)[1:]  # the header row first


def test_the_index_lists_runs_newest_first_with_date_verdict_batches_and_failed_names() -> None:
    page = render_docs_home([FAILED, PASSED], model_docs=True)
    newest, oldest = rows(page)
    assert "2026-06-15 10:00 UTC" in newest and '<span class="passed">passed</span>' in newest
    assert "all 1 passed" in newest and "<td>none</td>" in newest
    assert "2026-06-14 09:30 UTC" in oldest and '<span class="failed">failed</span>' in oldest
    assert "2 of 2 failed" in oldest
    assert "<code>country_looks_like_a_name</code>" in oldest
    assert "<code>country_holds_no_email_address</code> (in 2 batches)" in oldest
    first_page = "validations/persons_batch/run-failed-b00000-aaaa/t/landing-persons_batch.html"
    assert f'href="run-failed/{first_page}"' in oldest  # each batch's GX page
    assert 'href="run-failed/index.html"' in oldest  # the run's GX site
    assert 'href="dbt/index.html"' in page and "model docs" in page
    assert not [reference for reference in html_references(page) if is_external(reference)]
    assert "<script" not in page


def test_values_in_the_index_are_escaped() -> None:
    hostile = ValidatedRun(
        "<b>run</b>", "not a date", (ValidatedBatch("<i>", "x", False, 1, ("<s>",), None),)
    )
    page = render_docs_home([hostile])
    assert "<b>run</b>" not in page and "<i>" not in page and "<s>" not in page
    assert html.escape("<b>run</b>") in page


def test_an_empty_index_says_so() -> None:
    page = render_docs_home([])
    assert "No run has validated a batch yet." in page and "model docs" not in page


def write_site(root: Path, run: ValidatedRun) -> None:
    site = root / run.run_id
    site.mkdir(parents=True)
    (site / "index.html").write_text("<html></html>")
    batches = [
        {
            "batch_id": batch.batch_id,
            "validated_at": batch.validated_at,
            "passed": batch.passed,
            "evaluated": batch.evaluated,
            "failed": list(batch.failed),
            "page": batch.page,
        }
        for batch in run.batches or ()
    ]
    (site / RUN_SUMMARY).write_bytes(orjson.dumps({"run_id": run.run_id, "batches": batches}))


def test_the_index_reads_each_runs_summary_and_never_lists_the_model_docs(tmp_path: Path) -> None:
    write_site(tmp_path, FAILED)
    write_site(tmp_path, PASSED)
    for folder in ("dbt", "vendor"):  # dbt's docs and the shared assets: no validation runs
        (tmp_path / folder).mkdir()
    (tmp_path / "dbt" / "index.html").write_text("<html>dbt</html>")
    legacy = tmp_path / "run-legacy"  # a GX site built before runs wrote their summary
    (legacy / "validations").mkdir(parents=True)
    (legacy / "index.html").write_text("<html></html>")

    assert read_validated_run(tmp_path / "dbt") is None
    assert read_validated_run(tmp_path / "vendor") is None
    assert read_validated_run(tmp_path / "run-failed") == FAILED
    page = write_docs_home(tmp_path).read_text(encoding="utf-8")
    listed = rows(page)
    assert len(listed) == 3
    assert not [row for row in listed if 'href="dbt/' in row or "vendor" in row]
    assert 'href="dbt/index.html"' in page  # linked apart, as the model docs
    assert "not recorded" in next(row for row in listed if "run-legacy" in row)
    assert not list(tmp_path.glob(".*.partial"))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    gate = ValidationGate(root, "run-site")
    gate.validate(frame(country=["Germany", "leak@example.org", "France"]), "b00000-bad", expected_rows=3)
    gate.validate(frame(), "b00001-good", expected_rows=3)
    gate.build_docs()
    nothing = ValidationGate(root, "run-nothing")  # a run that validated no batch
    nothing.build_docs()
    write_docs_home(root)
    return root


def test_a_run_that_validated_nothing_gets_no_site(site: Path) -> None:
    assert not (site / "run-nothing").exists()
    assert "run-nothing" not in (site / "index.html").read_text(encoding="utf-8")


def test_a_validation_page_names_every_expectation_and_the_data_asset(site: Path) -> None:
    [page] = site.glob("run-site/validations/*/run-site-b00000-bad/*/*.html")
    text = page.read_text(encoding="utf-8")
    assert f"Data asset: {DATA_ASSET}, batch b00000-bad" in text and "Data asset: None" not in text
    for item in load_suite_definition()["expectations"]:
        assert f"{item['meta']['name']}:" in text, item["meta"]["name"]


def test_the_summary_and_the_index_carry_names_and_links_that_resolve(site: Path) -> None:
    summary = orjson.loads((site / "run-site" / RUN_SUMMARY).read_bytes())
    assert [(b["batch_id"], b["passed"]) for b in summary["batches"]] == [
        ("b00000-bad", False),
        ("b00001-good", True),
    ]
    assert "country_holds_no_email_address" in summary["batches"][0]["failed"]
    assert set(summary["batches"][0]) == {"batch_id", "validated_at", "passed", "evaluated", "failed", "page"}
    home = site / "index.html"
    page = home.read_text(encoding="utf-8")
    assert "<code>country_holds_no_email_address</code>" in page
    links = [reference for reference in html_references(page) if reference.startswith("run-site/")]
    assert len(links) == 3  # the run's site and each batch's page
    assert all((site / link).is_file() for link in links)


def test_the_description_is_the_name_and_its_note_as_gx_renders_it() -> None:
    item = {"meta": {"name": "a_name", "notes": {"content": ["Costs $5 & <more>."]}}}
    assert expectation_description(item) == "a_name: Costs $$5 &amp; &lt;more&gt;."
    assert expectation_description({"meta": {}}) is None
