"""DuckDB: the embedded warehouse (one file, one writer process at a time)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from flows.runtime.preflight import EnvironmentProblem
from flows.warehouse.base import ArrowBatch, Cursor, T, Warehouse
from flows.warehouse.dbt_targets import DbtTarget, duckdb_target


class DuckDBCursor(Cursor):
    """A DuckDB connection used through the shared cursor interface."""

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self.connection = connection

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Execute and fetch (DDL and DML return no rows)."""
        result = self.connection.execute(sql, list(params))
        return result.fetchall() if result.description else []

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One prepared statement, executed per row."""
        if rows:
            self.connection.executemany(sql, [list(row) for row in rows])

    def fetch_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Execute and return an Arrow table."""
        table: pa.Table = self.connection.sql(sql, params=list(params)).to_arrow_table()
        return table

    def begin(self) -> None:
        """Explicit transaction."""
        self.connection.begin()

    def commit(self) -> None:
        """Commit."""
        self.connection.commit()

    def rollback(self) -> None:
        """Roll back if a transaction is open."""
        with suppress(duckdb.TransactionException):
            self.connection.rollback()


def _held_by_another_process(exc: BaseException) -> bool:
    """DuckDB's error when another process holds the file's write lock."""
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


class WarehouseDamaged(EnvironmentProblem):
    """The DuckDB file cannot be read; the message names it and says what to do (one line)."""


# What DuckDB says of a file that is not (or no longer) a whole database.
_DAMAGE = ("not a valid DuckDB database", "Could not read enough bytes", "Corrupt", "checksum")


def damage_of(path: Path, exc: BaseException) -> WarehouseDamaged | None:
    """The error to give for a damaged warehouse file, if `exc` says the file is damaged."""
    if not isinstance(exc, duckdb.Error) or _held_by_another_process(exc):
        return None
    if not any(marker.lower() in str(exc).lower() for marker in _DAMAGE):
        return None
    return WarehouseDamaged(
        f"the warehouse {path} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}): the "
        f"file is damaged. Restore it from a backup; or move it aside (mv {path} {path}.damaged) and run "
        "again, which starts a new warehouse from the source (persons erased with `persons-pipeline forget` "
        "must then be forgotten again)"
    )


_UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def size_in_bytes(size: str) -> int:
    """A DuckDB memory size such as '128MB' or '1.5 GiB' in bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B)\s*", size, flags=re.IGNORECASE)
    if match is None:
        raise ValueError(f"not a memory size: {size!r} (e.g. 128MB, 1GiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


class DuckDBWarehouse(Warehouse):
    """One DuckDB file. Inside `with warehouse:` one connection serves the whole run (a checkpoint per
    close costs ~0.2 s at a million rows); outside it, each operation opens and closes its own."""

    dialect: ClassVar[str] = "duckdb"

    def __init__(
        self,
        path: Path,
        lock_timeout_s: float = 900.0,
        threads: int = 2,
        memory_limit: str = "512MB",
        report_memory_limit: str | None = None,
        read_only: bool = False,
    ) -> None:
        self.path = path
        self.read_only = read_only  # a reader (status, history): never creates the file, never blocks others
        self.lock_timeout_s = lock_timeout_s
        self.threads = threads
        self.memory_limit = memory_limit
        self.report_memory_limit = report_memory_limit
        self._connection: duckdb.DuckDBPyConnection | None = None

    def open(self) -> None:
        """Hold a connection (and the file's write lock) until `close`."""
        if self._connection is None:
            self._connection = self._connect()

    def close(self) -> None:
        """Release the connection; DuckDB checkpoints the file here."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    @property
    def location(self) -> str:
        """The database file."""
        return str(self.path)

    def dbt_target(self, threads: int, memory_limit: str | None = None) -> DbtTarget:
        """dbt-duckdb on the same file, with the run's caps unless given another memory cap."""
        return duckdb_target(self.path, threads, memory_limit or self.memory_limit)

    def heavy_reads(self, read: Callable[[], T]) -> T:
        """The reads under the report's cap; read again on one DuckDB thread if two ran out of it (the
        k-anonymous views over 10,000,000 persons: out of 128MB on two threads, 17 s on one)."""
        with self.reading_reports():
            try:
                return read()
            except duckdb.OutOfMemoryException:
                if self._connection is None:
                    raise
                self._connection.execute("set threads = 1")
                try:
                    return read()
                finally:
                    if self._connection is not None:
                        self._connection.execute("set threads = ?", [self.threads])

    @contextmanager
    def reading_reports(self) -> Iterator[None]:
        """The report's cap for the block if it is the larger, then the run's again (one cap per database)."""
        if (
            self.report_memory_limit is None
            or self._connection is None
            or size_in_bytes(self.report_memory_limit) <= size_in_bytes(self.memory_limit)
        ):
            yield
            return
        self._connection.execute("set memory_limit = ?", [self.report_memory_limit])
        try:
            yield
        finally:
            if self._connection is not None:
                self._connection.execute("set memory_limit = ?", [self.memory_limit])

    @contextmanager
    def released(self) -> Iterator[None]:
        """Close the run's connection for the block (one writing process per DuckDB file), then reopen."""
        held = self._connection is not None
        self.close()
        try:
            yield
        finally:
            if held:
                self.open()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """Connect, waiting while another process holds the file's write lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, str | bool | int | float | list[str]] = {
            "threads": self.threads,
            "memory_limit": self.memory_limit,
        }
        retrying = Retrying(
            stop=stop_after_delay(self.lock_timeout_s),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            retry=retry_if_exception(_held_by_another_process),
            reraise=True,
        )
        existed = self.path.exists()
        if self.read_only and not existed:
            raise EnvironmentProblem(f"there is no warehouse at {self.path} yet: a run creates it")
        try:
            connection = retrying(duckdb.connect, str(self.path), read_only=self.read_only, config=config)
        except duckdb.Error as exc:
            raise (damage_of(self.path, exc) or exc) from None
        if not self.read_only and (not existed or self.path.stat().st_mode & 0o077):
            self.path.chmod(0o600)  # personal data, even anonymised: the owner's alone (as the landed files)
        return connection

    @contextmanager
    def cursor(self) -> Iterator[Cursor]:
        """A cursor of the run's connection (thread-safe), or a connection of its own outside a run."""
        connection = self._connection.cursor() if self._connection is not None else self._connect()
        try:
            yield DuckDBCursor(connection)
        finally:
            connection.close()

    def append_arrow(self, cursor: Cursor, batch: ArrowBatch, staged: dict[str, str]) -> None:
        """Insert from the landed Arrow tables, registered as relations for the INSERT ... SELECT."""
        assert isinstance(cursor, DuckDBCursor)
        connection = cursor.connection
        connection.register("landed_persons", batch.persons)
        connection.register("landed_quarantine", batch.quarantine)
        try:
            values = {
                "batch_id": batch.landed.batch_id,
                "run_id": batch.run_id,
                "loaded_at": batch.loaded_at,
                "key_fingerprint": batch.landed.key_fingerprint,
            }
            cursor.execute(self.sql("landing/insert_persons"), **values)
            cursor.execute(self.sql("landing/insert_quarantined_persons"), **values)
        finally:
            connection.unregister("landed_persons")
            connection.unregister("landed_quarantine")
