"""A warehouse that explains itself, after real runs: every report answer reproduced from the published layers
alone, every relation and column described in the warehouse, and dbt usable by people from `sql/dbt`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from faker_twin import FakerTwin, TwinFaults

from flows.analytics.project import project_dir
from flows.landing.files import LocalLandingStore
from flows.run.dbt_stage import dbt_docs_location
from tests.integration.conftest import FlowRun
from tests.published import ANSWER_SQL, PUBLISHED, assert_reproduces, published_answers, relations_read

LAYERS = ("landing", "staging", "monitoring", "transform", "analytics", "reporting")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One warehouse for the module's runs (dbt builds its models once)."""
    return tmp_path_factory.mktemp("published") / "data"


def test_every_report_answer_is_reproduced_from_the_published_layers_alone(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun], data_dir: Path
) -> None:
    twin.set_faults(TwinFaults(bad_record_rate=0.05))

    run = run_pipeline(twin.url, data_dir=data_dir, total=3000, page_size=500, pages_per_batch=3, seed=41)

    assert run.state.is_completed(), run.state.message
    for sql in ANSWER_SQL.values():
        assert {name.split(".")[0] for name in relations_read(sql)} <= set(PUBLISHED), sql
    answers = published_answers(run.query)
    assert_reproduces(answers, run.report)
    assert answers["quarantined"] > 0 and len(answers["top_gmail_countries"]) == 3
    # the person-level fact counts everyone once, and per country its region shows who is not exact
    (persons, exact_germany, europe) = run.query(
        "select count(*), count(case when country_code = 'DE' then 1 end),"
        " count(case when region = 'Europe' then 1 end) from analytics.fct_persons"
    )[0]
    assert persons == run.report["total_persons"] and 0 < exact_germany < europe


def test_every_relation_and_column_is_described_and_counts_are_integers(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun], data_dir: Path
) -> None:
    run = run_pipeline(twin.url, data_dir=data_dir, total=3000, page_size=500, pages_per_batch=3, seed=41)

    assert run.state.is_completed(), run.state.message
    relations = run.query(
        "select schema_name, table_name, comment from duckdb_tables() union all"
        " select schema_name, view_name, comment from duckdb_views() where not internal"
    )
    columns = run.query("select schema_name, table_name, column_name, comment from duckdb_columns()")
    ours = [row for row in relations if row[0] in LAYERS]
    assert {row[0] for row in ours} == set(LAYERS) and len(ours) >= 35
    assert [row[:2] for row in ours if not row[-1]] == []
    assert [row[:3] for row in columns if row[0] in LAYERS and not row[-1]] == []
    trend = run.query("select batches_merged, published_persons, breaches from monitoring.run_trend")
    assert len(trend) == 2 and all(type(value) is int for row in trend for value in row)
    # this run built nothing (the models are views, current): the docs of the last build are still where
    store = LocalLandingStore(data_dir / "landing")
    assert dbt_docs_location(data_dir, store) == str(data_dir / "data_docs" / "dbt" / "index.html")


def test_dbt_ls_and_docs_generate_work_from_sql_dbt_with_the_committed_profile(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun], data_dir: Path, tmp_path: Path
) -> None:
    run = run_pipeline(twin.url, data_dir=data_dir, total=3000, page_size=500, pages_per_batch=3, seed=41)
    assert run.state.is_completed(), run.state.message
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith(("DBT_", "PERSONS_"))},
        "HOME": str(tmp_path),  # no ~/.dbt: the profile must be the one beside dbt_project.yml
        "PERSONS_DUCKDB_PATH": str(data_dir / "warehouse.duckdb"),
        "DO_NOT_TRACK": "1",
    }
    dbt = Path(sys.executable).parent / "dbt"
    # dbt's output goes to the test's folder, not into the shared checkout
    output = ["--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")]

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(dbt), *args, *output, "--no-use-colors"],
            check=False,  # the code and the output are asserted
            cwd=project_dir(),
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
        )

    listed = command("ls", "--resource-type", "model", "--output", "name")
    assert listed.returncode == 0, listed.stdout[-2000:]
    assert {"fct_persons", "agg_persons_by_country", "rpt_top_gmail_countries"} <= set(listed.stdout.split())
    docs = command("docs", "generate")
    assert docs.returncode == 0, docs.stdout[-2000:]
    catalog = json.loads((tmp_path / "target" / "catalog.json").read_text())
    fact = catalog["nodes"]["model.persons.fct_persons"]
    assert fact["metadata"]["comment"].startswith("analytics.fct_persons")
    assert all(column["comment"] for column in fact["columns"].values())
    assert catalog["sources"]["source.persons.landing.batches"]["metadata"]["comment"]
