"""The dbt project on both engines (DuckDB, and Snowflake through fakesnow): seeds, views and every test on
persons designed to need each protection step; a failed test fails the build, named; an unchanged project
is not built twice; the docs land beside the GX data docs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from prefect import flow

from flows.analytics.runner import DbtFailed
from flows.landing.files import LocalLandingStore
from flows.report.reads import read_report
from flows.run.dbt_stage import build_models, models_of_run
from flows.settings import get_settings
from flows.warehouse import Warehouse
from tests.conftest import PrefectServer, SnowflakeServer
from tests.published import (
    ANSWER_SQL,
    PUBLISHED,
    TOP_N,
    assert_reproduces,
    published_answers,
    relations_read,
)

# (persons, gender, age_group, country, country_code, email_domain) -> how each group must be published
DESIGNED = [
    (20, "female", "[31-40]", "Germany", "DE", "gmail.com"),  # a class of 20: exact
    (6, "male", "[41-50]", "France", "FR", "acme.com"),  # a class of 6: exact
    (3, "male", "[41-50]", "Belgium", "BE", "yahoo.com"),  # rare country and domain: Europe, other ...
    (2, "male", "[41-50]", "Netherlands", "NL", "rare.org"),  # ... together a class of 5: generalised
    (2, "female", "[91-100]", "Japan", "JP", "tiny.jp"),  # Asia, other: still 2 -> suppressed
    (1, "male", "[01-10]", "United States", "US", "gmail.com"),  # Americas, other: still 1 -> suppressed
]
REFERENCE = date(2026, 6, 15)


@dataclass
class Engine:
    """A migrated warehouse of one engine, a way to query it, and a data folder."""

    warehouse: Warehouse
    data_dir: Path

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with self.warehouse.cursor() as cursor:
            return cursor.run(sql)

    def add_persons(self, groups: list[tuple[int, str, str, str, str, str]]) -> None:
        now = datetime(2026, 6, 15, 12, 0)
        with self.warehouse.cursor() as cursor:
            for count, gender, age_group, country, code, domain in groups:
                for _ in range(count):
                    cursor.run(
                        "insert into staging.persons (person_key, gender, age_group, email_domain, country,"
                        " country_code, age_reference_date, batch_id, run_id, first_merged_at, updated_at)"
                        " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            uuid.uuid4().hex,
                            gender,
                            age_group,
                            domain,
                            country,
                            code,
                            REFERENCE,
                            "b1",
                            "r1",
                            now,
                            now,
                        ],
                    )


@contextmanager
def open_engine(name: str, request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Engine]:
    """A migrated warehouse of the engine called name; Snowflake's settings only while it is opened."""
    if name == "duckdb":
        from flows.warehouse.duckdb_warehouse import DuckDBWarehouse

        warehouse: Warehouse = DuckDBWarehouse(data_dir / "warehouse.duckdb", memory_limit="256MB")
    else:
        from flows.warehouse.snowflake_warehouse import SnowflakeWarehouse, connection_arguments

        server: SnowflakeServer = request.getfixturevalue("snowflake_server")
        with pytest.MonkeyPatch.context() as patch:
            for variable, value in server.environment(f"PERSONS_D{uuid.uuid4().hex[:8].upper()}").items():
                patch.setenv(variable, value)
            get_settings.cache_clear()
            settings = get_settings()
            warehouse = SnowflakeWarehouse(
                connection_arguments(settings, settings.snowflake.database), create_database=True
            )
    get_settings.cache_clear()
    try:
        with warehouse:
            warehouse.migrate()
            yield Engine(warehouse, data_dir)
    finally:
        get_settings.cache_clear()


@pytest.fixture(params=["duckdb", "snowflake"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty migrated warehouse per test."""
    with open_engine(request.param, request, tmp_path) as opened:
        yield opened


@pytest.fixture(scope="module", params=["duckdb", "snowflake"])
def published(
    request: pytest.FixtureRequest, prefect_client: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """DESIGNED, the quarantine of add_quarantine, one build: shared by the tests that only read it."""
    with open_engine(request.param, request, tmp_path_factory.mktemp(f"published-{request.param}")) as opened:
        opened.add_persons(DESIGNED)
        add_quarantine(opened)
        build(opened)
        yield opened


def build(engine: Engine, force: bool = False) -> dict[str, Any]:
    """The pipeline's build step, in a flow of its own (for the run logger and artifacts)."""

    @flow(name="dbt-models-test", validate_parameters=False, persist_result=False)
    def models() -> dict[str, Any]:
        store = LocalLandingStore(engine.data_dir / "landing")
        with models_of_run(engine.warehouse, get_settings(), engine.data_dir, "run-1", force) as planned:
            return build_models(engine.warehouse, planned, store, engine.data_dir, "run-1")

    return models()


def test_dbt_build_publishes_only_k_anonymous_classes_and_exact_reports(engine: Engine) -> None:
    engine.add_persons(DESIGNED)

    outcome = build(engine)

    assert outcome["built"] is True
    assert engine.query("select * from reporting.rpt_k_anonymity") == [(5, 34, 26, 5, 3, 3, 5)]
    classes = engine.query(
        "select gender, age_group, country_code, region, email_domain, count(*) from analytics.fct_persons"
        " group by gender, age_group, country_code, region, email_domain order by 6 desc"
    )
    assert classes == [
        ("female", "[31-40]", "DE", "Europe", "gmail.com", 20),
        ("male", "[41-50]", "FR", "Europe", "acme.com", 6),
        ("male", "[41-50]", None, "Europe", "other", 5),  # Belgium and the Netherlands: their region only
        ("*", "*", "*", "*", "*", 3),
    ]
    # exact figures, computed before suppression; groups of fewer than k persons are withheld
    assert engine.query("select total_persons from reporting.rpt_total_persons") == [(34,)]
    assert sorted(engine.query("select age_group, persons from reporting.rpt_age_groups")) == [
        ("[31-40]", 20),
        ("[41-50]", 11),
    ]
    assert engine.query("select country, gmail_users from reporting.rpt_top_gmail_countries") == [
        ("Germany", 20)
    ]
    assert engine.query("select gmail_over_60 from reporting.rpt_gmail_over_60") == [(0,)]
    countries = engine.query("select country_code, country_name, region from analytics.dim_country")
    assert sorted(countries) == [("*", "*", "*"), ("DE", "Germany", "Europe"), ("FR", "France", "Europe")]
    docs = engine.data_dir / "data_docs" / "dbt" / "index.html"
    assert outcome["docs"] == f"{docs.parent}/index.html"
    assert "fct_persons" in docs.read_text(encoding="utf-8")

    # views: new persons are published at once, still k-anonymous, without another build
    engine.add_persons([(1, "female", "[31-40]", "Germany", "DE", "gmail.com")])
    current = build(engine)
    assert current["built"] is False and current["docs"] == outcome["docs"]  # where the docs are, still
    assert engine.query("select persons, smallest_class from reporting.rpt_k_anonymity") == [(35, 5)]
    builds = engine.query("select status, tests from landing.model_builds")
    assert len(builds) == 1 and builds[0][0] == "success" and builds[0][1] >= 30

    # the k-anonymity test can fail: pointed at the exact (unpublished) quasi-identifiers, it finds them
    compiled = next((engine.data_dir / "dbt").rglob("compiled/**/k_anonymous_fct_persons_*.sql")).read_text()
    exact = compiled.replace("fct_persons", "persons").replace("analytics", "transform")
    assert sorted(row[-1] for row in engine.query(exact)) == [1, 2, 2, 3]


def test_the_published_layers_reproduce_every_report_answer(published: Engine) -> None:
    engine = published

    # exact counts per country and age group, a group under k withheld; a Gmail count under k is null
    countries = engine.query(
        "select country, country_code, persons, gmail_users from analytics.agg_persons_by_country"
    )
    assert sorted(countries) == [("France", "FR", 7, None), ("Germany", "DE", 20, 20)]  # k3 is French too
    groups = engine.query("select age_group, persons, gmail_users from analytics.agg_persons_by_age_group")
    assert sorted(groups) == [("[31-40]", 20, 20), ("[41-50]", 12, None)]
    totals = engine.query("select * from analytics.agg_person_totals")
    assert totals == [(35, 21, 20, 0)]  # persons, Gmail users, of them in Germany, over 60

    for sql in ANSWER_SQL.values():
        assert {name.split(".")[0] for name in relations_read(sql)} <= set(PUBLISHED), sql
    answers = published_answers(engine.query)
    assert_reproduces(answers, read_report(engine.warehouse, top_n=TOP_N).to_dict())
    assert answers["top_gmail_countries"] == [{"country": "Germany", "gmail_users": 20}]
    assert answers["quarantined"] == 3


LAYERS = ("landing", "staging", "monitoring", "transform", "analytics", "reporting")


def test_every_relation_and_column_carries_its_description_as_a_comment(published: Engine) -> None:
    engine = published

    if engine.warehouse.dialect == "duckdb":
        relations = engine.query(
            "select schema_name, table_name, comment from duckdb_tables() union all"
            " select schema_name, view_name, comment from duckdb_views() where not internal"
        )
        columns = engine.query("select schema_name, table_name, column_name, comment from duckdb_columns()")
    else:  # fakesnow keeps the comments of tables; those of views and columns it accepts and drops
        relations = engine.query(
            "select lower(table_schema), lower(table_name), comment from information_schema.tables"
        )
        columns = []
    ours = [row for row in relations if row[0] in LAYERS]
    assert len(ours) >= (16 + 18 if engine.warehouse.dialect == "duckdb" else 16)
    assert [row[:2] for row in ours if not row[-1]] == []
    assert [row[:3] for row in columns if row[0] in LAYERS and not row[-1]] == []
    comments = {(schema, name): comment for schema, name, comment in ours}
    assert comments[("landing", "batches")].startswith("The audit trail of write-audit-publish")  # a source
    assert comments[("transform", "age_groups")].startswith("transform.age_groups - the ten-year")  # a seed
    if engine.warehouse.dialect == "duckdb":
        assert comments[("analytics", "fct_persons")].startswith("analytics.fct_persons - one row per person")


def test_the_run_trend_counts_are_integers(engine: Engine) -> None:
    at = datetime(2026, 6, 15, 12, 0)
    with engine.warehouse.cursor() as cursor:
        for metric, subject, value in (
            ("batches_merged", "landing.batches", 2.0),
            ("layer_rows", "reporting.total_persons", 1500.0),
            ("quarantine_rate", "all", 0.25),
        ):
            cursor.run(
                "insert into monitoring.metrics (run_id, batch_id, metric, subject, metric_value,"
                " measured_at) values ('r1', null, ?, ?, ?, ?)",
                [metric, subject, value, at],
            )

    (row,) = engine.query(
        "select batches_merged, published_persons, breaches, quarantine_rate from monitoring.run_trend"
    )

    assert row == (2, 1500, 0, 0.25)
    assert [type(value) for value in row] == [int, int, int, float]


# (person_key, reason, run, batch, minute loaded): what anonymisation held back, batch by batch
QUARANTINED = [
    ("k1", "birthday_unparseable", "r1", "b1", 1),
    ("k1", "birthday_unparseable", "r2", "b2", 2),  # held back again by a later run: first by r1
    ("k2", "not_a_record", "r2", "b2", 2),
    ("k3", "country_invalid", "r2", "b2", 2),  # the same person published from another record: not counted
    ("k4", "invalid_utf8", "r2", "b3", 2),  # in a rejected batch: not in the published state
    ("k5", "country_invalid", "r0", "b0", 0),  # in a batch of a retired generation
    ("k6", "country_invalid", "r1", "b1", 1),
    ("k6", "address_missing", "r1", "b1", 1),  # two reasons: the first by name
]
BATCHES = [("r0", "b0", "merged", "g0"), ("r1", "b1", "merged", "g1"), ("r2", "b2", "merged", "g1"),
           ("r2", "b3", "rejected", "g1")]  # fmt: skip


def add_quarantine(engine: Engine) -> None:
    """A serving and a retired generation, their batches and the records they held back."""
    at = datetime(2026, 6, 15, 12, 0)
    with engine.warehouse.cursor() as cursor:
        for generation, status in (("g0", "retired"), ("g1", "serving")):
            cursor.run(
                "insert into staging.generations (generation_id, key_fingerprint, reference_date,"
                " policy_version, status, run_id, created_at) values (?, ?, ?, ?, ?, ?, ?)",
                [generation, "f" * 16, REFERENCE, "p", status, "r0", at],
            )
        for index, (run_id, batch_id, status, generation) in enumerate(BATCHES):
            cursor.run(
                "insert into landing.batches (run_id, batch_id, batch_index, status, persons, quarantined,"
                " extracted, duplicates, loaded_at, generation_id) values (?, ?, ?, ?, 0, 0, 0, 0, ?, ?)",
                [run_id, batch_id, index, status, at, generation],
            )
        for key, reason, run_id, batch_id, minute in QUARANTINED:
            cursor.run(
                "insert into landing.quarantined_persons (person_key, quarantine_reason, page_number,"
                " record_index, page_seed, batch_id, run_id, loaded_at) values (?, ?, 0, 0, 1, ?, ?, ?)",
                [key, reason, batch_id, run_id, at.replace(minute=minute)],
            )
        cursor.run(
            "insert into staging.persons (person_key, gender, age_group, email_domain, country, country_code,"
            " age_reference_date, batch_id, run_id, first_merged_at, updated_at)"
            " values ('k3', 'male', '[41-50]', 'acme.com', 'France', 'FR', ?, 'b2', 'r2', ?, ?)",
            [REFERENCE, at, at],
        )


def test_one_relation_holds_the_quarantine_the_report_and_the_monitor_count(published: Engine) -> None:
    engine = published

    held_back = engine.query(
        "select person_key, quarantine_reason, first_quarantined_by_run from transform.quarantined"
    )
    assert sorted(held_back) == [
        ("k1", "birthday_unparseable", "r1"),
        ("k2", "not_a_record", "r2"),
        ("k6", "address_missing", "r1"),
    ]
    reasons = engine.query("select quarantine_reason, records from reporting.rpt_quarantine_reasons")
    assert sorted(reasons) == [("address_missing", 1), ("birthday_unparseable", 1), ("not_a_record", 1)]
    warehouse = engine.warehouse
    with warehouse.cursor() as cursor:
        summary = cursor.execute(warehouse.sql("reporting/select_report_summary"))[0]
        by_run = {
            run_id: dict(cursor.execute(warehouse.sql("monitoring/select_run_quarantine"), run_id=run_id))
            for run_id in ("r0", "r1", "r2")
        }
    assert summary[3] == 3  # the report's quarantined: the sum of the reasons
    assert by_run == {
        "r0": {},
        "r1": {"address_missing": 1, "birthday_unparseable": 1},
        "r2": {"not_a_record": 1},
    }


def protected_by_definition(
    persons: list[tuple[str, str, str, str, str]], regions: dict[str, str], k: int
) -> dict[str, tuple[str, str, str, str, str]]:
    """The generalisation rule of trf_persons_protected, counted over every person at every step (the plain
    reading of the rule): person_key -> (gender, age_group, country_key, email_domain, protection)."""
    from collections import Counter

    def region(code: str) -> str:
        return regions.get(code, "Other")

    countries = Counter(code for _, _, _, code, _ in persons)
    domains = Counter(domain for *_, domain in persons)
    step1 = [
        (
            key,
            g,
            a,
            code,
            domain,
            code if countries[code] >= k else region(code),
            domain if domains[domain] >= k else "other",
        )
        for key, g, a, code, domain in persons
    ]
    by_country = Counter((g, a, c1, d1) for _, g, a, _, _, c1, d1 in step1)
    step2 = [
        (*row, row[5] if by_country[row[1], row[2], row[5], row[6]] >= k else region(row[3])) for row in step1
    ]
    by_domain = Counter((g, a, c2, d1) for _, g, a, _, _, _, d1, c2 in step2)
    step3 = [(*row, row[6] if by_domain[row[1], row[2], row[7], row[6]] >= k else "other") for row in step2]
    classes = Counter((g, a, c2, d3) for _, g, a, _, _, _, _, c2, d3 in step3)
    published = {}
    for key, g, a, code, domain, _, _, c2, d3 in step3:
        if classes[g, a, c2, d3] < k:
            published[key] = ("*", "*", "*", "*", "suppressed")
        else:
            protection = "generalised" if (c2, d3) != (code, domain) else "exact"
            published[key] = (g, a, c2, d3, protection)
    return published


@pytest.mark.parametrize("engine", ["duckdb"], indirect=True)
def test_the_protected_persons_match_the_rule_counted_person_by_person(engine: Engine) -> None:
    """The model generalises distinct combinations of quasi-identifiers, not persons: on a population with
    many rare values and small classes it publishes every person as the rule counted per person does."""
    import random

    rng = random.Random(7)
    codes = [
        ("DE", "Germany"),
        ("FR", "France"),
        ("BE", "Belgium"),
        ("JP", "Japan"),
        ("US", "United States"),
        ("BR", "Brazil"),
        ("ZZ", "Nowhere"),
    ]
    domains = ["gmail.com", "acme.com", "yahoo.com", "rare.org", "tiny.jp", "mail.de", "x.io"]
    groups = []
    for _ in range(160):
        code, country = rng.choice(codes[: rng.randint(1, len(codes))])
        groups.append(
            (
                rng.choice([1, 1, 1, 2, 3, 6]),
                rng.choice(["female", "male"]),
                rng.choice(["[21-30]", "[31-40]", "[41-50]", "[91-100]"]),
                country,
                code,
                rng.choice(domains[: rng.randint(1, len(domains))]),
            )
        )
    engine.add_persons(groups)
    build(engine)

    regions = dict(engine.query("select country_code, region from transform.country_regions"))
    persons = engine.query(
        "select person_key, gender, age_group, country_code, email_domain from transform.persons"
    )
    published = engine.query(  # the country's code, or its region where it was generalised
        "select person_key, gender, age_group, coalesce(country_code, region), email_domain, protection"
        " from analytics.fct_persons"
    )
    expected = protected_by_definition(persons, regions, k=5)
    assert {row[0]: tuple(row[1:]) for row in published} == expected
    protections = {row[4] for row in expected.values()}
    assert protections == {"exact", "generalised", "suppressed"}, "the population must need every step"


def test_a_failed_dbt_test_fails_the_build_naming_test_and_model(
    engine: Engine, request: pytest.FixtureRequest
) -> None:
    if request.node.callspec.params["engine"] != "duckdb":
        pytest.skip("failing a build is engine-independent; one engine shows it")
    engine.add_persons([*DESIGNED[:2], (5, "diverse", "[31-40]", "Germany", "DE", "gmail.com")])

    with pytest.raises(DbtFailed) as failure:
        build(engine)

    message = str(failure.value)
    assert "test accepted_values_fct_persons_gender" in message
    assert "on fct_persons" in message
    assert "diverse" not in message  # names and counts, never values
    assert engine.query("select status from landing.model_builds") == [("failed",)]
