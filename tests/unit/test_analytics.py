"""The dbt project's bookkeeping: fingerprints, profiles, results, docs, seeds and sources kept in step."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import yaml

from flows.analytics.project import (
    DBT_DUCKDB_SETTINGS,
    PROFILE,
    SNOWFLAKE_PASSWORD_VARIABLE,
    duckdb_target,
    fingerprint,
    project_dir,
    snowflake_target,
)
from flows.analytics.results import parse_results
from flows.anonymise.transform import AGE_GROUPS, MAX_AGE, age_group
from flows.landing.files import LocalLandingStore
from flows.run.dbt_stage import dbt_docs_location
from flows.settings import ModelSettings, PipelineSettings

TWIN_COUNTRIES = Path(__file__).resolve().parents[2] / "twin" / "faker_twin" / "data" / "countries.csv"


def seed(name: str) -> list[dict[str, str]]:
    with (project_dir() / "seeds" / f"{name}.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_fingerprint_follows_models_variables_and_engine(tmp_path: Path) -> None:
    copy = tmp_path / "dbt"
    shutil.copytree(project_dir(), copy, ignore=shutil.ignore_patterns("target", "logs"))
    before = fingerprint("duckdb", 5, copy)
    assert fingerprint("duckdb", 5, copy) == before
    assert fingerprint("duckdb", 6, copy) != before
    assert fingerprint("snowflake", 5, copy) != before
    (copy / "target").mkdir()
    (copy / "target" / "run_results.json").write_text("{}")
    assert fingerprint("duckdb", 5, copy) == before  # dbt's output is not an input
    model = copy / "models" / "reporting" / "rpt_total_persons.sql"
    model.write_text(model.read_text() + "\n-- changed\n")
    assert fingerprint("duckdb", 5, copy) != before


def test_profiles_name_secrets_only_as_environment_variables(tmp_path: Path) -> None:
    arguments = {
        "account": "acme",
        "user": "loader",
        "password": "pw-7731-never-in-a-file",
        "database": "PERSONS_DEV",
        "warehouse": "WH",
        "role": "LOADER",
        "login_timeout": 30,
    }
    target = snowflake_target(arguments, threads=4)
    profile = target.profile_yaml().decode()
    assert "pw-7731-never-in-a-file" not in profile
    assert f"env_var('{SNOWFLAKE_PASSWORD_VARIABLE}')" in profile
    assert SNOWFLAKE_PASSWORD_VARIABLE.startswith("DBT_ENV_SECRET_")  # dbt masks these in its logs
    assert target.secret_env == {SNOWFLAKE_PASSWORD_VARIABLE: "pw-7731-never-in-a-file"}
    output = yaml.safe_load(profile)["persons"]["outputs"]["snowflake"]
    assert output["database"] == "PERSONS_DEV" and output["role"] == "LOADER"
    local = yaml.safe_load(duckdb_target(tmp_path / "warehouse.duckdb", 2, "256MB").profile_yaml())
    assert local["persons"]["outputs"]["duckdb"]["path"] == str(tmp_path / "warehouse.duckdb")


def test_the_dbt_build_gets_its_own_duckdb_memory_cap(tmp_path: Path) -> None:
    """The k-anonymity tests over a million persons run out of the run's 128MB: the build has its own cap."""
    from flows.analytics.project import DbtTarget
    from flows.warehouse.duckdb_warehouse import DuckDBWarehouse

    house = DuckDBWarehouse(tmp_path / "warehouse.duckdb", memory_limit="128MB")

    def cap(target: DbtTarget) -> str:
        output = yaml.safe_load(target.profile_yaml())["persons"]["outputs"]["duckdb"]
        return str(output["settings"]["memory_limit"])

    assert cap(house.dbt_target(2)) == "128MB"
    assert cap(house.dbt_target(2, PipelineSettings().models.dbt_duckdb_memory_limit)) == "1GB"
    bigger = PipelineSettings(dbt_duckdb_memory_limit="2GB").models.dbt_duckdb_memory_limit
    assert cap(house.dbt_target(2, bigger)) == "2GB"


def test_run_results_name_the_failed_test_and_its_model() -> None:
    run_results = {
        "args": {"which": "build"},
        "elapsed_time": 4.5,
        "results": [
            {"unique_id": "model.persons.fct_persons", "status": "success", "execution_time": 0.2},
            {
                "unique_id": "test.persons.k_anonymous_fct_persons_gender.abc123",
                "status": "fail",
                "execution_time": 0.1,
                "failures": 3,
                "message": "Got 3 results, configured to fail if != 0",
            },
            {"unique_id": "test.persons.unique_dim_country_country_key.def", "status": "pass"},
        ],
    }
    manifest = {
        "nodes": {
            "model.persons.fct_persons": {"name": "fct_persons"},
            "test.persons.k_anonymous_fct_persons_gender.abc123": {
                "name": "k_anonymous_fct_persons_gender",
                "attached_node": "model.persons.fct_persons",
            },
        }
    }
    results = parse_results(run_results, manifest)
    assert [node.name for node in results.failed] == ["k_anonymous_fct_persons_gender"]
    assert results.failure_message() == (
        "dbt build failed: test k_anonymous_fct_persons_gender on fct_persons: fail, 3 failing rows"
    )
    assert results.counts() == {"model_success": 1, "test_fail": 1, "test_pass": 1}
    assert results.rows()[1]["model"] == "fct_persons"


def test_the_age_group_seed_is_the_anonymisation_policy() -> None:
    rows = seed("age_groups")
    assert tuple(row["age_group"] for row in rows) == AGE_GROUPS
    bounds = {row["age_group"]: (int(row["age_min"]), int(row["age_max"])) for row in rows}
    for age in range(MAX_AGE + 1):
        low, high = bounds[age_group(age)]
        assert low <= age <= high


def test_every_country_the_source_knows_has_a_region() -> None:
    regions = {row["country_code"]: row["region"] for row in seed("country_regions")}
    with TWIN_COUNTRIES.open(encoding="utf-8") as handle:
        codes = {row["country_code"] for row in csv.DictReader(handle)}
    assert codes <= set(regions)
    assert set(regions.values()) == {"Africa", "Americas", "Antarctica", "Asia", "Europe", "Oceania"}


def test_the_project_default_k_is_the_settings_default() -> None:
    project = yaml.safe_load((project_dir() / "dbt_project.yml").read_text())
    assert project["vars"]["k_anonymity"] == ModelSettings.model_fields["k_anonymity"].default


def test_the_dbt_process_imports_neither_prefect_nor_the_pipeline() -> None:
    import subprocess
    import sys

    code = (
        "import sys, flows.analytics.dbt_process; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'prefect', 'great_expectations'} "
        "or m.startswith('flows.warehouse')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_committed_profile_reads_the_environment_like_the_generated_one(tmp_path: Path) -> None:
    """`cd sql/dbt && dbt ls` finds profiles.yml there: the run's profile and engines, no literal setting."""
    committed = yaml.safe_load((project_dir() / "profiles.yml").read_text())
    outputs = committed[PROFILE]["outputs"]
    assert committed[PROFILE]["target"] == "duckdb"
    generated = {
        "duckdb": duckdb_target(tmp_path / "warehouse.duckdb", 2, "256MB"),
        "snowflake": snowflake_target({"account": "a", "user": "u", "database": "d", "warehouse": "w"}, 2),
    }
    assert set(outputs) == set(generated)
    for engine, target in generated.items():
        assert (
            outputs[engine]["type"] == target.fields["type"]
            and outputs[engine]["schema"] == target.fields["schema"]
        )
    assert outputs["duckdb"]["settings"] == DBT_DUCKDB_SETTINGS
    assert "env_var('PERSONS_DUCKDB_PATH'" in outputs["duckdb"]["path"]
    snowflake = outputs["snowflake"]
    assert snowflake["password"] == "{{ env_var('" + SNOWFLAKE_PASSWORD_VARIABLE + "', '') }}"
    for name in ("account", "user", "database", "warehouse"):
        assert snowflake[name] == "{{ env_var('SNOWFLAKE_" + name.upper() + "', '') }}"


def test_the_dbt_docs_location_is_known_to_a_run_that_built_nothing(tmp_path: Path) -> None:
    data_dir, store = tmp_path / "data", LocalLandingStore(tmp_path / "data" / "landing")
    assert dbt_docs_location(data_dir, store) is None  # never built here
    page = data_dir / "data_docs" / "dbt" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html></html>")
    assert dbt_docs_location(data_dir, store) == str(page)  # the last build's page (the views are current)
    uploaded = LocalLandingStore(tmp_path / "bucket")
    uploaded.write_bytes("data_docs/dbt/index.html", b"<html></html>")
    assert dbt_docs_location(tmp_path / "fresh-worker", uploaded) == uploaded.uri("data_docs/dbt/index.html")


def test_every_column_of_the_pipelines_own_tables_is_described_in_the_dbt_sources(tmp_path: Path) -> None:
    """sources.yml describes every relation and column the migrations make (the warehouse's comments)."""
    import duckdb

    from flows.warehouse.duckdb_warehouse import DuckDBWarehouse

    with DuckDBWarehouse(tmp_path / "warehouse.duckdb") as warehouse:
        warehouse.migrate()
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as connection:
        made = set(
            connection.execute(
                "select schema_name, table_name, column_name from duckdb_columns()"
                " where schema_name in ('landing', 'staging', 'monitoring')"
            ).fetchall()
        )
    sources = yaml.safe_load((project_dir() / "models" / "sources.yml").read_text())["sources"]
    described = {
        (source["name"], table["name"], column["name"])
        for source in sources
        for table in source["tables"]
        if table.get("description")
        for column in table.get("columns", [])
        if column.get("description")
    }
    assert made - described == set()
    assert described - made == set()  # nothing described that does not exist


def test_no_description_holds_a_quote() -> None:
    """fakesnow (the tests' Snowflake) writes a comment into its own SQL unescaped: a ' breaks it, and the
    connector then retries without end; descriptions write values as `*`, not '*'."""
    quoted = []
    for path in sorted((project_dir()).rglob("*.yml")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            text = line.replace("ref('", "").replace("')", "")
            if "'" in text and not line.lstrip().startswith("#") and "env_var(" not in line:
                quoted.append(f"{path.name}:{number}")
    assert quoted == []
