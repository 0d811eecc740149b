"""Generations of the published state: one key and one reference date each, exactly one serving.

A run adds to the serving generation when its key and reference date are the serving ones. A re-key or a new
reference date builds a new generation in `staging.persons_rebuild` while `staging.persons` keeps serving,
and switches over in one transaction once every batch was published; a failed rebuild leaves the old data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import orjson

from flows.sql_files import bind_named
from flows.warehouse.base import utc_now

if TYPE_CHECKING:
    from flows.warehouse.base import Warehouse


STAGING = "staging.persons"
REBUILD = "staging.persons_rebuild"
LANDING_TABLES = ("landing.persons", "landing.quarantined_persons")


@dataclass(frozen=True)
class Generation:
    """The generation a run publishes into."""

    generation_id: str
    key_fingerprint: str
    reference_date: date
    rebuilding: bool = False

    @property
    def target(self) -> str:
        """The table its batches merge into."""
        return REBUILD if self.rebuilding else STAGING


@dataclass(frozen=True)
class PublishedBatch:
    """A batch of a generation: its population (locale, birthday range) and pages."""

    batch_id: str
    page_query: dict[str, Any]
    pages: list[tuple[int, int, int]]  # (page number, seed, quantity)


def _as_date(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value  # type: ignore[no-any-return]


def serving_generation(warehouse: Warehouse) -> Generation | None:
    """The generation the published layers show (None before the first run)."""
    with warehouse.cursor() as cursor:
        rows = cursor.execute(warehouse.sql("staging/select_serving_generation"))
    if not rows:
        return None
    generation_id, fingerprint, reference_date = rows[0]
    return Generation(str(generation_id), str(fingerprint), _as_date(reference_date))


def begin_generation(warehouse: Warehouse, generation: Generation, run_id: str, policy_version: str) -> None:
    """Record a new generation: serving at once if nothing serves yet, else building in the rebuild table."""
    with warehouse.cursor() as cursor, cursor.transaction():
        if generation.rebuilding:
            cursor.execute(warehouse.sql("staging/update_building_generations_failed"))
            cursor.run(warehouse.sql("staging/delete_persons").statements()[0].format(target=REBUILD))
        cursor.execute(
            warehouse.sql("staging/insert_generation"),
            generation_id=generation.generation_id,
            key_fingerprint=generation.key_fingerprint,
            reference_date=generation.reference_date,
            policy_version=policy_version,
            status="building" if generation.rebuilding else "serving",
            run_id=run_id,
            created_at=utc_now(),
        )


class GenerationSuperseded(RuntimeError):
    """Another generation was switched over while this one was built; this one never serves."""


def switch_to(warehouse: Warehouse, generation: Generation, replaces: Generation | None) -> int:
    """Make a completely built generation the published one, atomically; return its persons."""
    with warehouse.cursor() as cursor:
        with cursor.transaction():
            rows = cursor.execute(warehouse.sql("staging/select_serving_generation"))
            serving = str(rows[0][0]) if rows else None
            if serving != (replaces.generation_id if replaces else None):
                raise GenerationSuperseded(
                    f"generation {serving} was switched over while {generation.generation_id} was built"
                )
            cursor.run(warehouse.sql("staging/delete_persons").statements()[0].format(target=STAGING))
            cursor.execute(warehouse.sql("staging/insert_persons_from_rebuild"))
            cursor.execute(warehouse.sql("staging/update_generation_retired"))
            cursor.execute(
                warehouse.sql("staging/update_generation_serving"),
                generation_id=generation.generation_id,
                switched_at=utc_now(),
            )
            cursor.run(warehouse.sql("staging/delete_persons").statements()[0].format(target=REBUILD))
            for table in LANDING_TABLES:
                statement = warehouse.sql("landing/delete_rows_of_retired_keys").statements()[0]
                sql, values = bind_named(
                    statement.format(target=table), {"key_fingerprint": generation.key_fingerprint}
                )
                cursor.run(sql, values)
        (persons,) = cursor.run(
            warehouse.sql("staging/count_persons").statements()[0].format(target=STAGING)
        )[0]
    return int(persons)


def abandon(warehouse: Warehouse, generation: Generation) -> None:
    """A rebuild that did not complete never serves (the old generation stays published)."""
    with warehouse.cursor() as cursor, cursor.transaction():
        cursor.execute(
            warehouse.sql("staging/update_generation_failed"), generation_id=generation.generation_id
        )
        cursor.run(warehouse.sql("staging/delete_persons").statements()[0].format(target=REBUILD))


def published_batches(warehouse: Warehouse, generation_id: str) -> list[PublishedBatch]:
    """The batches (and their pages) a generation was made of."""
    with warehouse.cursor() as cursor:
        rows = cursor.execute(warehouse.sql("staging/select_published_pages"), generation_id=generation_id)
    return [
        PublishedBatch(
            str(batch_id),
            orjson.loads(query),
            [tuple(page) for page in orjson.loads(pages)],  # type: ignore[misc]
        )
        for batch_id, query, pages in rows
    ]


def tombstoned_keys(warehouse: Warehouse, key_fingerprint: str) -> frozenset[str]:
    """The person_keys (under one key) that must never be published again."""
    with warehouse.cursor() as cursor:
        rows = cursor.execute(warehouse.sql("staging/select_tombstones"), key_fingerprint=key_fingerprint)
    return frozenset(str(key) for (key,) in rows)


def add_tombstones(warehouse: Warehouse, keys: list[str], key_fingerprint: str) -> int:
    """Record tombstones (idempotent); return how many keys were given."""
    forgotten_at = utc_now()
    with warehouse.cursor() as cursor, cursor.transaction():
        for key in keys:
            cursor.execute(
                warehouse.sql("staging/insert_tombstone"),
                person_key=key,
                key_fingerprint=key_fingerprint,
                forgotten_at=forgotten_at,
            )
    return len(keys)
