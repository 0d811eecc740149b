"""The erasure's side in the warehouse: one transaction that forgets, and the landed files still to rewrite.

`erase_rows` inserts the tombstones, notes every landed file holding a tombstoned key in
`landing.erasure_files` (pending), removes the rows from staging and landing and writes the audit row - all
at once, so an erasure is either not begun or complete in every layer. The files are rewritten afterwards;
`pending_files`, `mark_rewritten` and `mark_problem` keep that list until none is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from flows.sql_files import bind_named
from flows.warehouse.base import utc_now
from flows.warehouse.generations import REBUILD, STAGING

if TYPE_CHECKING:
    from flows.warehouse.base import Cursor, Warehouse

LANDING_PERSONS = "landing.persons"
LANDING_QUARANTINE = "landing.quarantined_persons"
ERASED_TABLES = (STAGING, REBUILD, LANDING_PERSONS, LANDING_QUARANTINE)


@dataclass(frozen=True)
class ErasureRequest:
    """One erasure: the keys to forget, under which key, and its audit's identity (no values)."""

    erasure_id: str
    keys: tuple[str, ...]
    identities: int
    key_fingerprint: str
    generation_id: str | None
    requested_at: datetime


@dataclass(frozen=True)
class ErasedRows:
    """What the erasure's transaction removed: counts only."""

    persons_erased: int
    staging_rows_removed: int
    landing_rows_removed: int
    quarantine_rows_removed: int


@dataclass(frozen=True)
class PendingFile:
    """A landed file to rewrite without the tombstones of one key."""

    landed_file: str
    key_fingerprint: str


def _count(cursor: Cursor, warehouse: Warehouse, stem: str, table: str, fingerprint: str) -> int:
    """Run a count of tombstoned rows in `table`."""
    statement = warehouse.sql(stem).statements()[0].format(target=table)
    sql, values = bind_named(statement, {"key_fingerprint": fingerprint})
    (count,) = cursor.run(sql, values)[0]
    return int(count)


def _delete_tombstoned(cursor: Cursor, warehouse: Warehouse, fingerprint: str) -> None:
    """Remove every tombstoned row of the staging and landing tables of persons."""
    statement = warehouse.sql("staging/delete_forgotten_persons").statements()[0]
    for table in ERASED_TABLES:
        sql, values = bind_named(statement.format(target=table), {"key_fingerprint": fingerprint})
        cursor.run(sql, values)


def _insert_audit(cursor: Cursor, warehouse: Warehouse, request: ErasureRequest, erased: ErasedRows) -> None:
    """The erasure's audit row in landing.erasures: counts only."""
    cursor.execute(
        warehouse.sql("landing/insert_erasure"),
        erasure_id=request.erasure_id,
        generation_id=request.generation_id,
        key_fingerprint=request.key_fingerprint,
        identities=request.identities,
        persons_erased=erased.persons_erased,
        staging_rows_removed=erased.staging_rows_removed,
        landing_rows_removed=erased.landing_rows_removed,
        quarantine_rows_removed=erased.quarantine_rows_removed,
        files_rewritten=0,  # counted up as each of its files is rewritten
        requested_at=request.requested_at,
        finished_at=utc_now(),
    )


def erase_rows(warehouse: Warehouse, request: ErasureRequest) -> ErasedRows:
    """Tombstone, note the landed files to rewrite, remove the rows and audit: one transaction."""
    fingerprint = request.key_fingerprint
    # Plain inserts and deletes only: Snowflake takes them in an explicit transaction (a MERGE it would not).
    with warehouse.cursor() as cursor, cursor.transaction():
        for key in request.keys:
            cursor.execute(
                warehouse.sql("staging/insert_tombstone"),
                person_key=key,
                key_fingerprint=fingerprint,
                forgotten_at=request.requested_at,
            )
        persons = _count(cursor, warehouse, "staging/count_forgotten_persons", STAGING, fingerprint)
        removed = {
            table: _count(cursor, warehouse, "staging/count_forgotten_rows", table, fingerprint)
            for table in ERASED_TABLES
        }
        # Noted before the rows go: they are what tells which landed files hold a forgotten person.
        cursor.execute(
            warehouse.sql("landing/insert_erasure_files"),
            erasure_id=request.erasure_id,
            key_fingerprint=fingerprint,
            noted_at=request.requested_at,
        )
        _delete_tombstoned(cursor, warehouse, fingerprint)
        erased = ErasedRows(
            persons_erased=persons,
            staging_rows_removed=removed[STAGING] + removed[REBUILD],
            landing_rows_removed=removed[LANDING_PERSONS],
            quarantine_rows_removed=removed[LANDING_QUARANTINE],
        )
        _insert_audit(cursor, warehouse, request, erased)
    return erased


def pending_files(warehouse: Warehouse) -> list[PendingFile]:
    """Every landed file an erasure still waits for (one query; usually none)."""
    with warehouse.cursor() as cursor:
        rows = cursor.execute(warehouse.sql("landing/select_pending_erasure_files"))
    return [PendingFile(str(landed_file), str(fingerprint)) for landed_file, fingerprint in rows]


def mark_rewritten(warehouse: Warehouse, file: PendingFile) -> None:
    """No erasure waits for the file any more; their audits count it (one transaction)."""
    names = {"landed_file": file.landed_file, "key_fingerprint": file.key_fingerprint}
    with warehouse.cursor() as cursor, cursor.transaction():
        cursor.execute(warehouse.sql("landing/update_erasures_file_rewritten"), **names)
        cursor.execute(
            warehouse.sql("landing/update_erasure_file_rewritten"), **names, rewritten_at=utc_now()
        )


def mark_problem(warehouse: Warehouse, file: PendingFile, problem: str) -> None:
    """Record why the file could not be rewritten yet (it stays pending)."""
    with warehouse.cursor() as cursor:
        cursor.execute(
            warehouse.sql("landing/update_erasure_file_problem"),
            landed_file=file.landed_file,
            key_fingerprint=file.key_fingerprint,
            problem=problem,
        )
