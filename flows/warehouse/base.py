"""The engine port: what each warehouse engine (DuckDB, Snowflake) implements, and nothing about any table.

Connect (`open`, `close`, `cursor`), run a SQL file (`sql`, `Cursor.execute`), load Arrow (`stage_arrow`,
`append_arrow`), merge and transactions (`Cursor.transaction`, `merge_in_transaction`), migrate, and the
engine's caps (`released`, `heavy_reads`). What is read and written, table by table, is in the repositories
written against this port: `batch_store`, `watermarks`, `build_history`, `generations`, `erasures`, `quality`
and `catalog` here, the report's reads in `flows.report.reads`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar, TypeVar

import pyarrow as pa

from flows.anonymise.columns import person_column_lists
from flows.landing.files import LandedBatch
from flows.sql_files import SqlScript, load_dialect_sql, load_sql, versioned_migrations
from flows.warehouse.dbt_targets import DbtTarget

T = TypeVar("T")


@cache
def _engine_sql(relative_stem: str, dialect: str) -> SqlScript:
    """The statement for an engine, with the person column lists filled in from OUTPUT_COLUMNS (once)."""
    return load_dialect_sql(relative_stem, dialect).expanded(person_column_lists())


def utc_now() -> datetime:
    """Naive UTC timestamp, the form both engines store in `timestamp` columns."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class ArrowBatch:
    """A landed batch as Arrow tables, with the load's own columns (what an engine appends to landing)."""

    landed: LandedBatch
    persons: pa.Table
    quarantine: pa.Table
    run_id: str
    loaded_at: datetime


class Cursor(ABC):
    """The little of DB-API both engines are used through."""

    @abstractmethod
    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Execute one statement and return its rows (empty for DDL/DML)."""

    @abstractmethod
    def fetch_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Execute a query and return its result as an Arrow table."""

    @abstractmethod
    def begin(self) -> None:
        """Start a transaction where the engine supports it around the statements that follow."""

    @abstractmethod
    def commit(self) -> None:
        """Commit the transaction started by `begin`."""

    @abstractmethod
    def rollback(self) -> None:
        """Undo the transaction started by `begin`."""

    @contextmanager
    def transaction(self, enabled: bool = True) -> Iterator[None]:
        """The block as one transaction (committed, or rolled back on error); a plain block if disabled."""
        if not enabled:
            yield
            return
        self.begin()
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Execute one DML statement once per row of bind values (engines may send them at once)."""
        for row in rows:
            self.run(sql, row)

    def execute(self, script: SqlScript, /, **values: Any) -> list[tuple[Any, ...]]:
        """Run a one-statement SQL file with named bind values."""
        sql, params = script.bind(**values)
        return self.run(sql, params)


class Warehouse(ABC):
    """The five layers' engine (DuckDB or Snowflake): landing and staging are written through it by the
    repositories, transform, analytics and reporting built by dbt (`flows.analytics`)."""

    dialect: ClassVar[str]
    # Snowflake's MERGE is atomic on its own (and its test server refuses it inside an explicit transaction).
    merge_in_transaction: ClassVar[bool] = True

    def open(self) -> None:  # noqa: B027 - an optional hook, deliberately empty by default
        """Acquire what a run keeps for its duration (nothing by default)."""

    def close(self) -> None:  # noqa: B027 - an optional hook, deliberately empty by default
        """Release what `open` acquired."""

    def __enter__(self) -> Warehouse:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @abstractmethod
    def cursor(self) -> AbstractContextManager[Cursor]:
        """A cursor on a fresh connection, closed on exit."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the warehouse is, for humans (no credentials)."""

    @abstractmethod
    def dbt_target(self, threads: int, memory_limit: str | None = None) -> DbtTarget:
        """The dbt profile output that builds the models in this warehouse (secrets by environment only);
        `memory_limit` caps an embedded engine's memory during the build (None: the warehouse's own cap)."""

    def sql(self, relative_stem: str) -> SqlScript:
        """The statement for this engine (a per-dialect file where one exists), the column lists filled in."""
        return _engine_sql(relative_stem, self.dialect)

    def prepare(self, statement: str) -> str:
        """Hook for dialect differences in DDL (identity for the reference dialect)."""
        return statement

    def migrate(self) -> list[str]:
        """Apply pending versioned migrations; return what was applied (the views above staging are dbt's)."""
        applied_now: list[str] = []
        with self.cursor() as cursor:
            for statement in load_sql("migrations/create_schema_change_history.sql").statements():
                cursor.run(self.prepare(statement))
            applied = {
                version: checksum
                for version, checksum in cursor.execute(self.sql("landing/select_applied_migrations"))
            }
            for migration in versioned_migrations():
                label = migration.version_label
                if label in applied:
                    if applied[label] != migration.script.checksum:
                        raise RuntimeError(
                            f"migration {migration.script.name} was edited after it was applied"
                        )
                    continue
                for statement in migration.script.statements():
                    cursor.run(self.prepare(statement))
                cursor.execute(
                    self.sql("landing/insert_applied_migration"),
                    version=label,
                    script=migration.script.name,
                    checksum=migration.script.checksum,
                    applied_at=utc_now(),
                )
                applied_now.append(migration.script.name)
        return applied_now

    def stage_arrow(self, batch: ArrowBatch) -> dict[str, str]:
        """Put the batch where the engine loads from, before the load transaction (nothing by default)."""
        return {}

    @abstractmethod
    def append_arrow(self, cursor: Cursor, batch: ArrowBatch, staged: dict[str, str]) -> None:
        """Append the batch's persons and quarantine rows to the landing tables (inside the caller's
        transaction; `staged` is what `stage_arrow` returned)."""

    @contextmanager
    def released(self) -> Iterator[None]:
        """Let another process write while the block runs (a no-op where the engine takes several writers)."""
        yield

    def heavy_reads(self, read: Callable[[], T]) -> T:
        """Run reads that scan the published layers (the report) under the engine's caps for them."""
        return read()
