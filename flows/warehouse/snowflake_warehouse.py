"""Snowflake: the production warehouse, through snowflake-connector-python, from the same SQL files.

Landed batches reach `landing` by PUT to an internal stage and COPY INTO (MATCH_BY_COLUMN_NAME); the batch's
load metadata (batch_id, run_id, loaded_at) travels as columns of the staged file. MERGE runs on its own
(it is atomic in Snowflake), not inside an explicit transaction.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, cast

import pyarrow as pa
import pyarrow.parquet as pq
import snowflake.connector
from snowflake.connector import SnowflakeConnection
from snowflake.connector.cursor import SnowflakeCursor

from flows.anonymise.transform import PERSONS_SCHEMA
from flows.settings import PipelineSettings
from flows.sql_files import load_sql
from flows.warehouse.base import ArrowBatch, Cursor, Warehouse
from flows.warehouse.dbt_targets import DbtTarget, snowflake_target

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")
STAGE_PATH_PART = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")


class SnowflakeSettingsError(ValueError):
    """A Snowflake setting is missing or wrong; the message names the variables, never their values."""


def connection_arguments(
    settings: PipelineSettings, database: str | None, password: str | None = None
) -> dict[str, Any]:
    """Keyword arguments for snowflake.connector.connect, checked; SnowflakeSettingsError if incomplete."""
    missing = [
        name
        for name, value in (
            ("SNOWFLAKE_ACCOUNT", settings.snowflake.account),
            ("SNOWFLAKE_USER", settings.snowflake.user),
            ("SNOWFLAKE_WAREHOUSE", settings.snowflake.warehouse),
            ("SNOWFLAKE_DATABASE", database),
        )
        if not value
    ]
    secret = password or (
        settings.snowflake.password.get_secret_value() if settings.snowflake.password else None
    )
    if not secret and not settings.snowflake.private_key_path:
        missing.append("SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_PATH")
    if missing:
        raise SnowflakeSettingsError(f"Snowflake settings missing: {', '.join(missing)}")
    assert database is not None
    for name, value in (
        ("SNOWFLAKE_DATABASE", database),
        ("SNOWFLAKE_WAREHOUSE", settings.snowflake.warehouse),
        ("SNOWFLAKE_ROLE", settings.snowflake.role),
    ):
        if value and not IDENTIFIER.match(value):
            raise SnowflakeSettingsError(f"{name} is not a valid Snowflake identifier")
    arguments: dict[str, Any] = {
        "account": settings.snowflake.account,
        "user": settings.snowflake.user,
        "warehouse": settings.snowflake.warehouse,
        "database": database,
        "paramstyle": "qmark",  # server-side binding: values never enter SQL text
        "login_timeout": settings.snowflake.login_timeout_s,
        "network_timeout": 300,
        "application": "persons-pipeline",
        "session_parameters": {
            "QUERY_TAG": "persons-pipeline",
            "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False,
        },
    }
    if settings.snowflake.role:
        arguments["role"] = settings.snowflake.role
    if secret:
        arguments["password"] = secret
    else:
        arguments["private_key"] = _private_key_der(settings)
    for name in ("host", "port", "protocol"):
        value = getattr(settings.snowflake, name)
        if value:
            arguments[name] = value
    return arguments


def _private_key_der(settings: PipelineSettings) -> bytes:
    """The key-pair authentication key as DER bytes (PEM file, optionally encrypted)."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    assert settings.snowflake.private_key_path is not None
    path = settings.snowflake.private_key_path
    if not path.is_file():
        raise SnowflakeSettingsError("SNOWFLAKE_PRIVATE_KEY_PATH does not name a readable file")
    passphrase = settings.snowflake.private_key_passphrase
    try:
        key = serialization.load_pem_private_key(
            path.read_bytes(), password=passphrase.get_secret_value().encode() if passphrase else None
        )
    except (ValueError, TypeError):
        raise SnowflakeSettingsError("SNOWFLAKE_PRIVATE_KEY_PATH is not a usable PEM private key") from None
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class SnowflakeCursor_(Cursor):  # noqa: N801 - distinct from the connector's SnowflakeCursor
    """A connector cursor used through the shared interface."""

    def __init__(self, cursor: SnowflakeCursor) -> None:
        self.cursor = cursor

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Execute one statement; rows of a query, nothing for DDL/DML status results."""
        self.cursor.execute(sql, list(params) if params else None)
        rows = self.cursor.fetchall()
        return [tuple(row) for row in rows] if _returns_rows(sql) else []

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """The connector binds the rows as arrays: one round trip, not one per row."""
        if rows:
            self.cursor.executemany(sql, [list(row) for row in rows])

    def fetch_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Execute a query and return Arrow with lower-case column names (Snowflake upper-cases them)."""
        self.cursor.execute(sql, list(params) if params else None)
        table = self.cursor.fetch_arrow_all()
        if table is None:
            return pa.Table.from_pylist([], schema=PERSONS_SCHEMA)
        table = table.rename_columns([name.lower() for name in table.column_names])
        return table.cast(PERSONS_SCHEMA) if table.column_names == PERSONS_SCHEMA.names else table

    def begin(self) -> None:
        """Explicit transaction."""
        self.cursor.execute("begin")

    def commit(self) -> None:
        """Commit."""
        self.cursor.execute("commit")

    def rollback(self) -> None:
        """Roll back."""
        self.cursor.execute("rollback")


def _returns_rows(sql: str) -> bool:
    """Whether a statement is a query (the connector returns status rows for everything else)."""
    first = re.sub(r"--[^\n]*", "", sql).strip().split(None, 1)[0].lower()
    return first in {"select", "with", "show", "describe"}


class SnowflakeWarehouse(Warehouse):
    """One connection per run; the layers are schemas LANDING, STAGING, TRANSFORM, ANALYTICS, REPORTING."""

    dialect: ClassVar[str] = "snowflake"
    merge_in_transaction: ClassVar[bool] = False
    STAGE = "landing.landed_files"

    def __init__(self, arguments: dict[str, Any], create_database: bool = False) -> None:
        self._arguments = arguments
        self._create_database = create_database
        self._connection: SnowflakeConnection | None = None

    @classmethod
    def from_settings(cls, settings: PipelineSettings, database: str | None) -> SnowflakeWarehouse:
        """Adapter from the settings (a Prefect Secret block or an AWS secret may supply the password)."""
        password = None
        if settings.snowflake.password_block:
            from prefect.blocks.system import Secret  # noqa: PLC0415

            block = cast(Secret[str], Secret.load(settings.snowflake.password_block))
            password = str(block.get())
        elif settings.snowflake.password_aws_secret:
            from flows.secrets import aws_secret  # noqa: PLC0415

            password = aws_secret(
                settings.snowflake.password_aws_secret,
                "PERSONS_SNOWFLAKE_PASSWORD_AWS_SECRET",
                endpoint_url=settings.aws_endpoint_url,
            ).get_secret_value()
        return cls(connection_arguments(settings, database, password), settings.snowflake.create_database)

    @property
    def location(self) -> str:
        """account/database, for humans."""
        return f"snowflake://{self._arguments['account']}/{self._arguments['database']}"

    def dbt_target(self, threads: int, memory_limit: str | None = None) -> DbtTarget:
        """dbt-snowflake with the same account, user, database and secret (passed by environment); the
        warehouse's size, not a memory cap, bounds Snowflake."""
        return snowflake_target(self._arguments, threads)

    def open(self) -> None:
        """Connect once for the run (creating the database first where allowed)."""
        if self._connection is not None:
            return
        arguments = dict(self._arguments)
        database = arguments.pop("database")
        connection = snowflake.connector.connect(**arguments)
        cursor = connection.cursor()
        try:
            if self._create_database:
                cursor.execute(f"create database if not exists {database}")  # identifier checked above
            cursor.execute(f"use database {database}")
        finally:
            cursor.close()
        self._connection = connection

    def close(self) -> None:
        """Disconnect."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    @contextmanager
    def cursor(self) -> Iterator[Cursor]:
        """A cursor on the run's connection."""
        self.open()
        assert self._connection is not None
        cursor = self._connection.cursor()
        try:
            yield SnowflakeCursor_(cursor)
        finally:
            cursor.close()

    def migrate(self) -> list[str]:
        """Apply migrations, then make sure the stage exists and a schema is current (MERGE needs one)."""
        applied = super().migrate()
        with self.cursor() as cursor:
            cursor.run(load_sql("landing/create_landed_files_stage.snowflake.sql").statements()[0])
            cursor.run("use schema staging")
        return applied

    def stage_arrow(self, batch: ArrowBatch) -> dict[str, str]:
        """PUT the batch's files, with their load metadata as columns, to the internal stage."""
        landed, run_id, loaded_at = batch.landed, batch.run_id, batch.loaded_at
        if not (STAGE_PATH_PART.match(run_id) and STAGE_PATH_PART.match(landed.batch_id)):
            raise ValueError("run and batch ids must be plain tokens to name stage paths")
        staged = {}
        with tempfile.TemporaryDirectory(prefix="persons-stage-") as folder, self.cursor() as cursor:
            for name, table in (("persons", batch.persons), ("quarantine", batch.quarantine)):
                with_metadata = (
                    table.append_column("batch_id", pa.array([landed.batch_id] * table.num_rows, pa.string()))
                    .append_column("run_id", pa.array([run_id] * table.num_rows, pa.string()))
                    .append_column("loaded_at", pa.array([loaded_at] * table.num_rows, pa.timestamp("us")))
                    .append_column(
                        "key_fingerprint", pa.array([landed.key_fingerprint] * table.num_rows, pa.string())
                    )
                )
                path = Path(folder) / f"{landed.batch_id}.{name}.parquet"
                pq.write_table(with_metadata, path, compression="zstd")
                statement = (
                    load_sql("landing/put_landed_file.snowflake.sql")
                    .statements()[0]
                    .format(local_path=path.as_posix(), stage=self.STAGE, stage_dir=run_id)
                )
                cursor.run(statement)
                staged[name] = f"@{self.STAGE}/{run_id}/{path.name}"
        return staged

    def append_arrow(self, cursor: Cursor, batch: ArrowBatch, staged: dict[str, str]) -> None:
        """COPY the staged files into the landing tables."""
        for table, name in (("landing.persons", "persons"), ("landing.quarantined_persons", "quarantine")):
            statement = (
                load_sql("landing/copy_into_landing.snowflake.sql")
                .statements()[0]
                .format(table=table, staged_file=staged[name])
            )
            cursor.run(statement)
