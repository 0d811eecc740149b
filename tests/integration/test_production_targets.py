"""Snowflake and S3 through the real clients: snowflake-connector-python against fakesnow, prefect-aws and
boto3 against moto - both servers started by the session, on 127.0.0.1."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import snowflake.connector
from faker_twin.server import FakerTwin, TwinFaults

from flows.settings import OFFLINE_DEMO_SECRET, get_settings
from tests.conftest import PrefectServer, S3Server, SnowflakeServer
from tests.integration.conftest import REFERENCE_DATE, FlowRun
from tests.leakscan import Needles, scan
from tests.oracle import expected_from_served

PARAMS = {"total": 3000, "page_size": 500, "pages_per_batch": 3, "seed": 9}


@dataclass
class Production:
    """One test's Snowflake database and S3 bucket."""

    snowflake: SnowflakeServer
    s3: S3Server
    database: str
    bucket: str

    @property
    def landing_url(self) -> str:
        return f"s3://{self.bucket}/persons"

    def connect(self, database: str | None = None) -> Any:
        """The real connector on the fakesnow server (in `database` when given)."""
        env = self.snowflake.environment(self.database)
        return snowflake.connector.connect(
            account=env["SNOWFLAKE_ACCOUNT"],
            user=env["SNOWFLAKE_USER"],
            password=env["SNOWFLAKE_PASSWORD"],
            host=self.snowflake.host,
            port=self.snowflake.port,
            protocol="http",
            database=database,
            session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        )

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with self.connect(self.database) as connection:
            return [tuple(row) for row in connection.cursor().execute(sql).fetchall()]

    def objects(self) -> dict[str, bytes]:
        client: Any = self.s3.client()
        keys = [item["Key"] for item in client.list_objects_v2(Bucket=self.bucket).get("Contents", [])]
        while True:
            listing = client.list_objects_v2(Bucket=self.bucket, StartAfter=keys[-1]) if keys else {}
            more = [item["Key"] for item in listing.get("Contents", [])]
            if not more:
                break
            keys += more
        return {key: client.get_object(Bucket=self.bucket, Key=key)["Body"].read() for key in keys}


@pytest.fixture
def production(
    snowflake_server: SnowflakeServer, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Production]:
    """A fresh database and bucket; the standard SNOWFLAKE_* and AWS_* variables point at the servers."""
    suffix = uuid.uuid4().hex[:10]
    target = Production(
        snowflake_server, s3_server, f"PERSONS_T{suffix.upper()}", f"persons-landing-{suffix}"
    )
    client: Any = s3_server.client()
    client.create_bucket(Bucket=target.bucket)
    for name, value in {**snowflake_server.environment(target.database), **s3_server.environment()}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield target
    get_settings.cache_clear()


def report_of(run: FlowRun) -> dict[str, Any]:
    document = run.report
    document.pop("run")
    return document


def test_snowflake_and_s3_give_the_same_report_as_duckdb_and_rerun_idempotently(
    twin: FakerTwin,
    run_pipeline: Callable[..., FlowRun],
    production: Production,
    tmp_path: Path,
    prefect_client: PrefectServer,
) -> None:
    faults = TwinFaults(bad_record_rate=0.05, extra_fields=True)
    twin.set_faults(faults)
    local = run_pipeline(twin.url, data_dir=tmp_path / "duckdb", **PARAMS)
    assert local.state.is_completed(), local.state.message

    remote = run_pipeline(
        twin.url,
        data_dir=tmp_path / "snowflake",
        warehouse="snowflake",
        landing_url=production.landing_url,
        **PARAMS,
    )

    assert remote.state.is_completed(), remote.state.message
    requests_before = twin.stats()["persons_requests"]
    assert report_of(remote) == report_of(local)
    assert remote.report["run"]["warehouse"] == "snowflake"
    keys = {row[0] for row in production.query("select person_key from staging.persons")}
    assert len(keys) == remote.report["total_persons"]
    objects = production.objects()
    names = list(objects)
    assert any(name.endswith("/manifest.json") for name in names)
    assert sum(name.endswith(".persons.parquet") for name in names) == 2
    assert sum(name.endswith(".quarantine.parquet") for name in names) == 2
    run_id = remote.report["run"]["run_id"]
    assert f"persons/data_docs/{run_id}/index.html" in objects
    assert any(name.startswith(f"persons/data_docs/{run_id}/validations/") for name in names)
    assert f"persons/reports/{run_id}/report.json" in objects
    assert "persons/data_docs/dbt/index.html" in objects  # dbt's docs beside the GX data docs
    assert remote.report["run"]["data_docs"] == f"{production.landing_url}/data_docs/{run_id}/index.html"
    assert any(name.startswith("persons/.prefect-cache/") for name in names)  # results beside the files

    # no raw value in anything that landed in the bucket (same scan as the local leak test)
    download = tmp_path / "bucket"
    for name, data in objects.items():
        (download / name).parent.mkdir(parents=True, exist_ok=True)
        (download / name).write_bytes(data)
    served = expected_from_served(twin.served(), faults, REFERENCE_DATE, OFFLINE_DEMO_SECRET.encode())
    assert scan([download], Needles.from_records(served.raw_records)) == []

    rerun = run_pipeline(
        twin.url,
        data_dir=tmp_path / "snowflake",
        warehouse="snowflake",
        landing_url=production.landing_url,
        **PARAMS,
    )

    assert rerun.state.is_completed(), rerun.state.message
    assert twin.stats()["persons_requests"] == requests_before  # the rerun reused the batches landed in S3
    assert {row[0] for row in production.query("select person_key from staging.persons")} == keys
    assert report_of(rerun) == report_of(local)


def test_a_missing_snowflake_setting_fails_before_any_data_moves(
    twin: FakerTwin,
    run_pipeline: Callable[..., FlowRun],
    production: Production,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SNOWFLAKE_USER")
    monkeypatch.setenv("SNOWFLAKE_PASSWORD", "pw-Zq81-never-shown")
    get_settings.cache_clear()

    run = run_pipeline(twin.url, warehouse="snowflake", landing_url=production.landing_url, **PARAMS)

    assert run.state.is_failed()
    assert "SNOWFLAKE_USER" in run.state.message
    assert "pw-Zq81-never-shown" not in run.state.message
    assert twin.stats()["persons_requests"] == 0
    assert production.objects() == {}


def test_an_unreachable_bucket_fails_before_any_data_moves(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun], production: Production
) -> None:
    run = run_pipeline(twin.url, landing_url="s3://no-such-bucket-for-persons/x", **PARAMS)

    assert run.state.is_failed()
    assert "no-such-bucket-for-persons" in run.state.message
    assert twin.stats()["persons_requests"] == 0


def test_reports_written_by_both_engines_have_the_same_shape(production: Production) -> None:
    # the Snowflake report keys come from the same SQL files as DuckDB's (checked end to end above);
    # here: every migration runs on the Snowflake server as-is (the views above staging are dbt's, built
    # on fakesnow in tests/integration/test_dbt_models.py)
    from flows.sql_files import load_sql, versioned_migrations

    with production.connect() as connection:
        cursor = connection.cursor()
        cursor.execute(f"create database if not exists {production.database}")
        cursor.execute(f"use database {production.database}")
        for statement in load_sql("migrations/create_schema_change_history.sql").statements():
            cursor.execute(statement)
        for migration in versioned_migrations():
            for statement in migration.script.statements():
                cursor.execute(statement)
        cursor.execute(load_sql("landing/select_models_fingerprint.sql").statements()[0])
        assert json.loads(json.dumps(cursor.fetchall(), default=str)) == []
