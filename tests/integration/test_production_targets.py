"""Snowflake and S3 through the real clients: snowflake-connector-python against fakesnow, prefect-aws and
boto3 against moto - both servers started by the session, on 127.0.0.1."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import snowflake.connector
from faker_twin import FakerTwin, TwinFaults

from flows.gate.offline_docs import SHARED_VENDOR, asset_paths, load_lock
from flows.report.charts import CHARTS
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
    assert all(f"persons/reports/{run_id}/{name}.png" in objects for name, _ in CHARTS)
    page = objects[f"persons/reports/{run_id}/report.html"].decode()
    trend = re.search(r'<section id="quality_trend">.*?</section>', page, re.DOTALL)
    assert trend and f"<td>{run_id}</td>" in trend.group(
        0
    )  # the trend, read from Snowflake's landing.batches
    assert "persons/data_docs/dbt/index.html" in objects  # dbt's docs beside the GX data docs
    # The pages' vendored assets: once beside every run's docs, not in each run's (3.5 MB a run)
    vendored = sorted(
        f"persons/data_docs/{SHARED_VENDOR}/{path}" for path in asset_paths(load_lock()).values()
    )
    assert set(vendored) <= set(objects)
    assert not [name for name in names if name.startswith(f"persons/data_docs/{run_id}/static/vendor/")]
    uploaded_at = production.s3.client().head_object(Bucket=production.bucket, Key=vendored[0])[
        "LastModified"
    ]
    assert remote.report["run"]["data_docs"] == f"{production.landing_url}/data_docs/{run_id}/index.html"
    assert any(name.startswith("persons/.prefect-cache/") for name in names)  # results beside the files
    # OpenLineage: the events file is copied beside the landed files; Snowflake and S3 by the naming spec
    events = [json.loads(line) for line in objects[f"persons/lineage/{run_id}.jsonl"].splitlines()]
    assert [event["eventType"] for event in events] == ["START", "COMPLETE"]
    outputs = {(o["namespace"], o["name"]): o for o in events[1]["outputs"]}
    assert ("s3://" + production.bucket, "persons") in outputs
    staging = outputs[("snowflake://fakesnow", f"{production.database}.STAGING.PERSONS")]
    assert staging["outputFacets"]["outputStatistics"]["rowCount"] == len(keys)
    assert "person_key" in {field["name"] for field in staging["facets"]["schema"]["fields"]}
    fct = outputs[("snowflake://fakesnow", f"{production.database}.ANALYTICS.FCT_PERSONS")]
    assert fct["outputFacets"]["outputStatistics"]["rowCount"] == len(keys)

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
    again = production.s3.client().head_object(Bucket=production.bucket, Key=vendored[0])["LastModified"]
    assert again == uploaded_at  # the shared assets were not uploaded again
    assert {row[0] for row in production.query("select person_key from staging.persons")} == keys
    assert report_of(rerun) == report_of(local)

    # The monitor on Snowflake: the same batch figures as on DuckDB, and a trend row for each of the two runs.
    def batch_metrics(rows: list[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
        return {(batch, metric, subject, round(float(value), 9)) for batch, metric, subject, value in rows}

    columns = "batch_id, metric, subject, metric_value"
    remote_id, rerun_id = (str(run.state.state_details.flow_run_id) for run in (remote, rerun))
    on_snowflake = production.query(
        f"select {columns} from monitoring.metrics where run_id = '{remote_id}' and batch_id is not null"
    )
    on_duckdb = local.query(
        f"select {columns} from monitoring.metrics where run_id = ? and batch_id is not null",
        [str(local.state.state_details.flow_run_id)],
    )
    assert batch_metrics(on_snowflake) == batch_metrics(on_duckdb) and len(on_snowflake) > 50
    trend = production.query(
        "select run_id, published_persons from monitoring.run_trend order by measured_at"
    )
    total = remote.report["total_persons"]
    assert trend == [(remote_id, total), (rerun_id, total)]  # the rerun merged nothing new


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


def test_forget_erases_persons_from_snowflake_and_s3_and_a_restating_rerun_keeps_them_out(
    twin: FakerTwin,
    run_pipeline: Callable[..., FlowRun],
    production: Production,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import io
    from datetime import date

    import pyarrow.parquet as pq

    from flows.cli import main
    from tests.oracle import person_key

    faults = TwinFaults(bad_record_rate=0.05)
    twin.set_faults(faults)
    target = {"warehouse": "snowflake", "landing_url": production.landing_url}
    first = run_pipeline(twin.url, data_dir=tmp_path / "snowflake", **target, **PARAMS)
    assert first.state.is_completed(), first.state.message
    secret = OFFLINE_DEMO_SECRET.encode()
    expected = expected_from_served(twin.served(), faults, REFERENCE_DATE, secret)
    fields = ("firstname", "lastname", "email", "phone", "birthday")
    usable = [
        r
        for r in expected.raw_records
        if isinstance(r, dict) and all(isinstance(r.get(n), str) for n in fields)
    ]
    chosen = [r for r in usable if person_key(r, secret) in expected.persons][:2]
    chosen += [
        r for r in usable if person_key(r, secret) in set(expected.quarantined) - set(expected.persons)
    ][:1]
    forgotten = {person_key(record, secret) for record in chosen}
    identity_file = tmp_path / "request.jsonl"
    identity_file.write_text("".join(json.dumps({n: r[n] for n in fields}) + "\n" for r in chosen))

    options = ["--data-dir", str(tmp_path / "snowflake"), "--warehouse", "snowflake"]
    code = main(
        ["forget", "--identity-file", str(identity_file), *options, "--landing-url", production.landing_url]
    )

    assert code == 0, capsys.readouterr().err
    assert "persons_erased: 3" in capsys.readouterr().out

    def keys_in(table: str) -> set[str]:
        return {row[0] for row in production.query(f"select person_key from {table}")}

    for table in ("staging.persons", "landing.persons", "landing.quarantined_persons"):
        assert not forgotten & keys_in(table), table
    assert keys_in("staging.tombstones") == forgotten
    assert production.query("select persons_erased, files_rewritten > 0 from landing.erasures") == [(3, True)]
    landed = set()
    for name, data in production.objects().items():
        if name.endswith(".parquet"):
            landed |= set(pq.read_table(io.BytesIO(data)).column("person_key").to_pylist())
    assert landed and not forgotten & landed  # the landed files in S3 were rewritten without them
    assert production.query("list @landing.landed_files") == []  # staged copies were purged on load

    later = run_pipeline(
        twin.url, data_dir=tmp_path / "snowflake", **target, **{**PARAMS, "reference_date": date(2027, 1, 1)}
    )
    assert later.state.is_completed(), later.state.message
    assert not forgotten & keys_in("staging.persons")
    assert len(keys_in("staging.persons")) == len(set(expected.persons) - forgotten)
