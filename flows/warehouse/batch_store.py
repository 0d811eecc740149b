"""The batches' repository: a batch's way through landing (loaded, validated, held back or rejected) and its
merge into staging, written against the engine port."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import pyarrow as pa

from flows.landing.files import LandedBatch
from flows.sql_files import bind_named
from flows.warehouse.base import ArrowBatch, Warehouse, utc_now
from flows.warehouse.generations import Generation, PublishedBatch


@dataclass(frozen=True)
class MergeResult:
    """What publishing one batch changed."""

    batch_id: str
    inserted: int
    staging_rows: int


def load_batch(
    warehouse: Warehouse,
    landed: LandedBatch,
    persons: pa.Table,
    quarantine: pa.Table,
    run_id: str,
    generation_id: str | None = None,
) -> int:
    """Replace this run's copy of the batch in landing (retry-safe) and record it as loaded."""
    batch = ArrowBatch(landed, persons, quarantine, run_id, utc_now())
    keys = {"run_id": run_id, "batch_id": landed.batch_id}
    staged = warehouse.stage_arrow(batch)
    with warehouse.cursor() as cursor, cursor.transaction():
        cursor.execute(warehouse.sql("landing/delete_batch_persons"), **keys)
        cursor.execute(warehouse.sql("landing/delete_batch_quarantine"), **keys)
        cursor.execute(warehouse.sql("landing/delete_batch_audit"), **keys)
        warehouse.append_arrow(cursor, batch, staged)
        cursor.execute(
            warehouse.sql("landing/insert_batch_audit"),
            **keys,
            batch_index=landed.batch_index,
            persons=landed.persons,
            quarantined=landed.quarantined,
            extracted=landed.extracted,
            duplicates=landed.duplicates,
            landed_file=landed.persons_key,
            loaded_at=batch.loaded_at,
            key_fingerprint=landed.key_fingerprint,
            generation_id=generation_id,
            requested=landed.requested,
        )
        (loaded,) = cursor.execute(warehouse.sql("landing/count_batch_persons"), **keys)[0]
        if loaded != persons.num_rows:
            raise RuntimeError(
                f"batch {landed.batch_id}: loaded {loaded} rows, file holds {persons.num_rows}"
            )
    return int(loaded)


def read_batch(warehouse: Warehouse, run_id: str, batch_id: str) -> pa.Table:
    """The batch as landed in the warehouse, for the validation gate."""
    with warehouse.cursor() as cursor:
        sql, params = warehouse.sql("landing/select_batch_persons").bind(run_id=run_id, batch_id=batch_id)
        return cursor.fetch_arrow(sql, params)


def record_validation(
    warehouse: Warehouse, run_id: str, batch_id: str, passed: bool, failed: Sequence[str], docs: str
) -> None:
    """Store the gate's verdict on the batch's audit row."""
    with warehouse.cursor() as cursor:
        cursor.execute(
            warehouse.sql("landing/update_batch_validated"),
            run_id=run_id,
            batch_id=batch_id,
            status="validated" if passed else "rejected",
            failed_expectations=",".join(failed) or None,
            data_docs=docs,
            validated_at=utc_now(),
        )


def hold_back_batch(warehouse: Warehouse, run_id: str, batch_id: str) -> None:
    """Mark a loaded batch that will not be merged (unless the gate already rejected it)."""
    with warehouse.cursor() as cursor:
        cursor.execute(warehouse.sql("landing/update_batch_held_back"), run_id=run_id, batch_id=batch_id)


def hold_back_abandoned_batches(warehouse: Warehouse, run_id: str) -> int:
    """Mark loaded-but-unmerged batches of other runs held back (call only as the one writer)."""
    with warehouse.cursor() as cursor:
        (abandoned,) = cursor.execute(warehouse.sql("landing/count_abandoned_batches"), run_id=run_id)[0]
        if abandoned:
            cursor.execute(warehouse.sql("landing/update_abandoned_batches_held_back"), run_id=run_id)
    return int(abandoned)


def merge_batch(
    warehouse: Warehouse, run_id: str, landed: LandedBatch, generation: Generation, published: PublishedBatch
) -> MergeResult:
    """Publish a validated batch into its generation with one MERGE on person_key (never a forgotten
    person), and record the pages it was made of."""
    merged_at = utc_now()
    batch_id = landed.batch_id
    count = warehouse.sql("staging/count_persons").statements()[0].format(target=generation.target)
    merge, merge_values = bind_named(
        warehouse.sql("staging/merge_into_persons").statements()[0].format(target=generation.target),
        {
            "run_id": run_id,
            "batch_id": batch_id,
            "merged_at": merged_at,
            "generation_id": generation.generation_id,
            "key_fingerprint": generation.key_fingerprint,
        },
    )
    with warehouse.cursor() as cursor:
        (before,) = cursor.run(count)[0]
        with cursor.transaction(warehouse.merge_in_transaction):
            cursor.run(merge, merge_values)
            cursor.execute(
                warehouse.sql("landing/update_batch_merged"),
                run_id=run_id,
                batch_id=batch_id,
                merged_at=merged_at,
            )
            cursor.execute(
                warehouse.sql("staging/insert_published_batch"),
                generation_id=generation.generation_id,
                batch_id=batch_id,
                run_id=run_id,
                page_query=orjson.dumps(published.page_query).decode(),
                pages=orjson.dumps(published.pages).decode(),
                requested=landed.requested,
                received=landed.extracted + landed.forgotten,
                quarantined=landed.quarantined,
                duplicates=landed.duplicates,
                forgotten=landed.forgotten,
                persons=landed.persons,
                published_at=merged_at,
            )
        (after,) = cursor.run(count)[0]
    return MergeResult(batch_id=batch_id, inserted=int(after) - int(before), staging_rows=int(after))


@dataclass(frozen=True)
class RejectedBatch:
    """A batch the source did not deliver completely: where it sat in the run, and why it was refused."""

    batch_id: str
    batch_index: int
    requested: int
    reason: str


def record_rejected_batch(
    warehouse: Warehouse, run_id: str, rejected: RejectedBatch, key_fingerprint: str, generation_id: str
) -> None:
    """Audit a batch the source did not deliver completely (never landed, never published)."""
    with warehouse.cursor() as cursor:
        cursor.execute(warehouse.sql("landing/delete_batch_audit"), run_id=run_id, batch_id=rejected.batch_id)
        cursor.execute(
            warehouse.sql("landing/insert_rejected_batch"),
            run_id=run_id,
            batch_id=rejected.batch_id,
            batch_index=rejected.batch_index,
            loaded_at=utc_now(),
            key_fingerprint=key_fingerprint,
            generation_id=generation_id,
            requested=rejected.requested,
            rejection_reason=rejected.reason,
        )
