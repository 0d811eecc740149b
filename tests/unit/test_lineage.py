"""The pure builders of the OpenLineage events: dataset names, counts, facets, START and COMPLETE/FAIL."""

from __future__ import annotations

import ast
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openlineage.client.serde import Serde

from flows.lineage.events import (
    JobRef,
    Places,
    Relation,
    api_dataset,
    end_event,
    landing_dataset,
    one_line_reason,
    relations_from_columns,
    run_counts,
    run_uuid,
    start_event,
    warehouse_places,
)

RUN_ID = "0f6a1f9e-3a52-4c8e-9d65-7f2d6c1e5b10"
JOB = JobRef("persons-local", "persons-pipeline", "the flow", "3.9.0", "0.1.0", {"environment": "local"})
PLACES = Places(
    api=("http://127.0.0.1:8123", "/api/v2/persons"),
    landing=("file", "/data/landing"),
    warehouse_namespace="duckdb:///data/warehouse.duckdb",
    warehouse_database="warehouse",
    upper_case=False,
)
NOW = datetime(2026, 6, 15, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://fakerapi.it/api/v2", ("https://fakerapi.it", "/api/v2/persons")),
        ("http://127.0.0.1:8123/api/v2/", ("http://127.0.0.1:8123", "/api/v2/persons")),
        ("https://user:token@api.example.org/v2?x=1", ("https://api.example.org", "/v2/persons")),
    ],
)
def test_the_api_is_named_by_scheme_and_host_and_the_endpoint_path(
    url: str, expected: tuple[str, str]
) -> None:
    assert api_dataset(url) == expected


def test_landing_places_follow_the_naming_spec() -> None:
    assert landing_dataset("file:///srv/data/landing") == ("file", "/srv/data/landing")
    assert landing_dataset("/srv/data/landing") == ("file", "/srv/data/landing")
    assert landing_dataset("s3://persons-landing-prod/persons") == ("s3://persons-landing-prod", "persons")
    assert landing_dataset("s3://bucket-only") == ("s3://bucket-only", "/")


def test_warehouse_namespaces() -> None:
    assert warehouse_places("duckdb", "/srv/data/warehouse.duckdb", None, None) == (
        "duckdb:///srv/data/warehouse.duckdb",
        "warehouse",
    )
    assert warehouse_places("snowflake", "ignored", "MyOrg-Analytics", "persons_prod") == (
        "snowflake://myorg-analytics",
        "PERSONS_PROD",
    )
    assert warehouse_places("snowflake", "ignored", "xy12345.eu-central-1", "PERSONS_DEV") == (
        "snowflake://xy12345.eu-central-1",
        "PERSONS_DEV",
    )


def test_the_run_id_is_the_flow_run_id_or_a_stable_uuid_of_a_local_id() -> None:
    assert run_uuid(RUN_ID) == RUN_ID
    local = run_uuid("local-20260615T083000")
    assert uuid.UUID(local).version == 5 and local == run_uuid("local-20260615T083000")


def test_the_failure_reason_is_one_short_line() -> None:
    assert one_line_reason(RuntimeError("2 batch(es) were not published\nTraceback ...")) == (
        "RuntimeError: 2 batch(es) were not published"
    )
    assert one_line_reason(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert len(one_line_reason(ValueError("x" * 2000))) == 500


def test_run_counts_tell_fetched_cached_and_rejected_batches_apart() -> None:
    batches = [
        ("b0", "merged", 900, 80, 1000, f"2026-06-15/{RUN_ID}/b0.persons.parquet"),
        ("b1", "merged", 950, 40, 1000, "2026-06-14/earlier-run/b1.persons.parquet"),  # from the cache
        ("b2", "rejected", 990, 10, 1000, f"2026-06-15/{RUN_ID}/b2.persons.parquet"),  # gate said no
        ("b3", "rejected", 0, 0, 0, None),  # the source did not deliver it: never landed
    ]
    counts = run_counts(batches, RUN_ID)
    assert counts.received == 2000  # b0 and b2 were fetched by this run
    assert (counts.landed_rows, counts.landed_files) == (900 + 80 + 990 + 10, 4)
    assert (counts.loaded_persons, counts.loaded_quarantined) == (900 + 950 + 990, 80 + 40 + 10)
    assert counts.batch_rows == 4
    assert counts.merged_persons == 900 + 950


def test_catalog_rows_group_into_relations_in_column_order() -> None:
    rows = [
        ("reporting", "rpt_age_groups", "VIEW", "age_group", "VARCHAR"),
        ("reporting", "rpt_age_groups", "VIEW", "persons", "BIGINT"),
        ("staging", "persons", "BASE TABLE", "person_key", "VARCHAR"),
    ]
    assert relations_from_columns(rows) == [
        Relation("reporting", "rpt_age_groups", "VIEW", (("age_group", "VARCHAR"), ("persons", "BIGINT"))),
        Relation("staging", "persons", "BASE TABLE", (("person_key", "VARCHAR"),)),
    ]


def _datasets(event: dict[str, object], side: str) -> dict[tuple[str, str], dict[str, object]]:
    items = event[side]
    assert isinstance(items, list)
    return {(item["namespace"], item["name"]): item for item in items}


def test_start_names_the_job_run_and_datasets_without_counts() -> None:
    event = json.loads(Serde.to_json(start_event(JOB, RUN_ID, NOW, PLACES)))

    assert event["eventType"] == "START"
    assert event["eventTime"] == "2026-06-15T08:30:00+00:00"
    assert event["run"]["runId"] == RUN_ID
    assert event["run"]["facets"]["processing_engine"]["name"] == "prefect"
    assert event["job"] == {**event["job"], "namespace": "persons-local", "name": "persons-pipeline"}
    assert event["job"]["facets"]["jobType"]["integration"] == "PREFECT"
    assert list(_datasets(event, "inputs")) == [("http://127.0.0.1:8123", "/api/v2/persons")]
    outputs = _datasets(event, "outputs")
    assert ("file", "/data/landing") in outputs
    assert ("duckdb:///data/warehouse.duckdb", "warehouse.staging.persons") in outputs
    assert all(not output["outputFacets"] for output in outputs.values())  # counts come at the end


def test_complete_carries_row_counts_and_column_names() -> None:
    counts = run_counts([("b0", "merged", 900, 80, 1000, f"d/{RUN_ID}/b0.persons.parquet")], RUN_ID)
    relations = [
        Relation("staging", "persons", "BASE TABLE", (("person_key", "VARCHAR"), ("gender", "VARCHAR"))),
        Relation("reporting", "rpt_age_groups", "VIEW", (("age_group", "VARCHAR"),), rows=13),
        Relation("analytics", "fct_persons", "VIEW", (("person_key", "VARCHAR"),), rows=900),
    ]

    event = json.loads(Serde.to_json(end_event(JOB, RUN_ID, NOW, PLACES, counts, relations, None)))

    assert event["eventType"] == "COMPLETE" and "errorMessage" not in event["run"]["facets"]
    api = _datasets(event, "inputs")[PLACES.api]
    assert api["inputFacets"]["inputStatistics"]["rowCount"] == 1000
    outputs = _datasets(event, "outputs")
    namespace = PLACES.warehouse_namespace

    def rows(name: str) -> int:
        return int(outputs[(namespace, name)]["outputFacets"]["outputStatistics"]["rowCount"])

    landed = outputs[PLACES.landing]["outputFacets"]["outputStatistics"]
    assert (landed["rowCount"], landed["fileCount"]) == (980, 2)
    assert rows("warehouse.landing.persons") == 900
    assert rows("warehouse.landing.quarantined_persons") == 80
    assert rows("warehouse.landing.batches") == 1
    assert rows("warehouse.staging.persons") == 900
    assert rows("warehouse.reporting.rpt_age_groups") == 13
    assert rows("warehouse.analytics.fct_persons") == 900
    staging = outputs[(namespace, "warehouse.staging.persons")]["facets"]
    assert [field["name"] for field in staging["schema"]["fields"]] == ["person_key", "gender"]
    assert staging["datasetType"]["datasetType"] == "TABLE"
    view = outputs[(namespace, "warehouse.reporting.rpt_age_groups")]["facets"]
    assert view["datasetType"]["datasetType"] == "VIEW"


def test_fail_carries_the_reason_and_works_without_counts() -> None:
    reason = "PipelineFailed: 1 batch(es) were not published: batch b0 rejected by the validation gate"

    event = json.loads(Serde.to_json(end_event(JOB, RUN_ID, NOW, PLACES, None, [], reason)))

    assert event["eventType"] == "FAIL"
    assert event["run"]["facets"]["errorMessage"]["message"] == reason
    assert event["run"]["facets"]["errorMessage"]["programmingLanguage"] == "python"
    assert len(event["outputs"]) == 5  # landing files and the four written tables, uncounted


def test_snowflake_names_are_upper_case() -> None:
    places = Places(PLACES.api, ("s3://bucket", "persons"), "snowflake://org-acct", "PERSONS_PROD", True)
    relations = [Relation("REPORTING", "RPT_AGE_GROUPS", "VIEW", (("AGE_GROUP", "TEXT"),), rows=13)]

    event = json.loads(Serde.to_json(end_event(JOB, RUN_ID, NOW, places, None, relations, None)))

    names = {(o["namespace"], o["name"]) for o in event["outputs"]}
    assert ("snowflake://org-acct", "PERSONS_PROD.STAGING.PERSONS") in names
    assert ("snowflake://org-acct", "PERSONS_PROD.REPORTING.RPT_AGE_GROUPS") in names
    assert ("s3://bucket", "persons") in names


def _module_level_imports(path: Path) -> set[str]:
    """Modules a file imports when it is imported (not those imported inside functions)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_openlineage_is_imported_only_when_a_run_emits() -> None:
    flows = Path(__file__).resolve().parents[2] / "flows"
    eager = {
        path.relative_to(flows).as_posix()
        for path in flows.rglob("*.py")
        if {
            name
            for name in _module_level_imports(path)
            if name.startswith(("openlineage", "flows.lineage.events"))
        }
    }
    assert eager == {"lineage/events.py"}  # and the emitter imports events inside its functions
