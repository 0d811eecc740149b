"""The small interface every warehouse implements, and the logic they share (all SQL from `sql/`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
import pyarrow as pa

from flows.landing.files import LandedBatch
from flows.report.charts import RunQuality
from flows.report.render import TOP_COUNTRIES, Report, accounting_of, protection_counts
from flows.sql_files import (
    SqlScript,
    bind_named,
    load_dialect_sql,
    load_sql,
    versioned_migrations,
)
from flows.warehouse.dbt_targets import DbtTarget
from flows.windows import LoadWindow

if TYPE_CHECKING:
    from flows.warehouse.published import Generation, PublishedBatch


def utc_now() -> datetime:
    """Naive UTC timestamp, the form both engines store in `timestamp` columns."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class MergeResult:
    """What publishing one batch changed."""

    batch_id: str
    inserted: int
    staging_rows: int


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
    """The five layers behind one interface (DuckDB or Snowflake): landing and staging written here,
    transform, analytics and reporting built by dbt (`flows.analytics`)."""

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

    def _stage_batch(
        self, landed: LandedBatch, persons: pa.Table, quarantine: pa.Table, run_id: str, loaded_at: datetime
    ) -> dict[str, str]:
        """Put the batch where the engine loads from, before the load transaction (nothing by default)."""
        return {}

    @abstractmethod
    def _append_batch(
        self,
        cursor: Cursor,
        landed: LandedBatch,
        persons: pa.Table,
        quarantine: pa.Table,
        run_id: str,
        loaded_at: datetime,
        staged: dict[str, str],
    ) -> None:
        """Append the batch's persons and quarantine rows to the landing tables (engine-specific)."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the warehouse is, for humans (no credentials)."""

    @abstractmethod
    def dbt_target(self, threads: int, memory_limit: str | None = None) -> DbtTarget:
        """The dbt profile output that builds the models in this warehouse (secrets by environment only);
        `memory_limit` caps an embedded engine's memory during the build (None: the warehouse's own cap)."""

    @contextmanager
    def released(self) -> Iterator[None]:
        """Let another process write while the block runs (a no-op where the engine takes several writers)."""
        yield

    def models_fingerprint(self) -> str | None:
        """The fingerprint of the models' last successful dbt build here (None: never built)."""
        with self.cursor() as cursor:
            rows = cursor.execute(self.sql("landing/select_models_fingerprint"))
        return str(rows[0][0]) if rows else None

    def record_models_build(
        self,
        fingerprint: str,
        k_anonymity: int,
        status: str,
        run_id: str,
        models: int,
        tests: int,
        seconds: float,
    ) -> None:
        """Append a dbt build's outcome to landing.model_builds."""
        with self.cursor() as cursor:
            cursor.execute(
                self.sql("landing/insert_model_build"),
                fingerprint=fingerprint,
                k_anonymity=k_anonymity,
                status=status,
                run_id=run_id,
                models=models,
                tests=tests,
                seconds=seconds,
                built_at=utc_now(),
            )

    def sql(self, relative_stem: str) -> SqlScript:
        """The statement for this engine (a per-dialect file where one exists)."""
        return load_dialect_sql(relative_stem, self.dialect)

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

    def prepare(self, statement: str) -> str:
        """Hook for dialect differences in DDL (identity for the reference dialect)."""
        return statement

    def load_batch(
        self,
        landed: LandedBatch,
        persons: pa.Table,
        quarantine: pa.Table,
        run_id: str,
        generation_id: str | None = None,
    ) -> int:
        """Replace this run's copy of the batch in landing (retry-safe) and record it as loaded."""
        loaded_at = utc_now()
        keys = {"run_id": run_id, "batch_id": landed.batch_id}
        staged = self._stage_batch(landed, persons, quarantine, run_id, loaded_at)
        with self.cursor() as cursor, cursor.transaction():
            cursor.execute(self.sql("landing/delete_batch_persons"), **keys)
            cursor.execute(self.sql("landing/delete_batch_quarantine"), **keys)
            cursor.execute(self.sql("landing/delete_batch_audit"), **keys)
            self._append_batch(cursor, landed, persons, quarantine, run_id, loaded_at, staged)
            cursor.execute(
                self.sql("landing/insert_batch_audit"),
                **keys,
                batch_index=landed.batch_index,
                persons=landed.persons,
                quarantined=landed.quarantined,
                extracted=landed.extracted,
                duplicates=landed.duplicates,
                landed_file=landed.persons_key,
                loaded_at=loaded_at,
                key_fingerprint=landed.key_fingerprint,
                generation_id=generation_id,
                requested=landed.requested,
            )
            (loaded,) = cursor.execute(self.sql("landing/count_batch_persons"), **keys)[0]
            if loaded != persons.num_rows:
                raise RuntimeError(
                    f"batch {landed.batch_id}: loaded {loaded} rows, file holds {persons.num_rows}"
                )
        return int(loaded)

    def read_batch(self, run_id: str, batch_id: str) -> pa.Table:
        """The batch as landed in the warehouse, for the validation gate."""
        with self.cursor() as cursor:
            sql, params = self.sql("landing/select_batch_persons").bind(run_id=run_id, batch_id=batch_id)
            return cursor.fetch_arrow(sql, params)

    def record_validation(
        self, run_id: str, batch_id: str, passed: bool, failed: Sequence[str], docs: str
    ) -> None:
        """Store the gate's verdict on the batch's audit row."""
        with self.cursor() as cursor:
            cursor.execute(
                self.sql("landing/update_batch_validated"),
                run_id=run_id,
                batch_id=batch_id,
                status="validated" if passed else "rejected",
                failed_expectations=",".join(failed) or None,
                data_docs=docs,
                validated_at=utc_now(),
            )

    def hold_back_batch(self, run_id: str, batch_id: str) -> None:
        """Mark a loaded batch that will not be merged (unless the gate already rejected it)."""
        with self.cursor() as cursor:
            cursor.execute(self.sql("landing/update_batch_held_back"), run_id=run_id, batch_id=batch_id)

    def hold_back_abandoned_batches(self, run_id: str) -> int:
        """Mark loaded-but-unmerged batches of other runs held back (call only as the one writer)."""
        with self.cursor() as cursor:
            (abandoned,) = cursor.execute(self.sql("landing/count_abandoned_batches"), run_id=run_id)[0]
            if abandoned:
                cursor.execute(self.sql("landing/update_abandoned_batches_held_back"), run_id=run_id)
        return int(abandoned)

    def merge_batch(
        self, run_id: str, landed: LandedBatch, generation: Generation, published: PublishedBatch
    ) -> MergeResult:
        """Publish a validated batch into its generation with one MERGE on person_key (never a forgotten
        person), and record the pages it was made of."""
        merged_at = utc_now()
        batch_id = landed.batch_id
        count = self.sql("staging/count_persons").statements()[0].format(target=generation.target)
        merge, merge_values = bind_named(
            self.sql("staging/merge_into_persons").statements()[0].format(target=generation.target),
            {
                "run_id": run_id,
                "batch_id": batch_id,
                "merged_at": merged_at,
                "generation_id": generation.generation_id,
                "key_fingerprint": generation.key_fingerprint,
            },
        )
        with self.cursor() as cursor:
            (before,) = cursor.run(count)[0]
            with cursor.transaction(self.merge_in_transaction):
                cursor.run(merge, merge_values)
                cursor.execute(
                    self.sql("landing/update_batch_merged"),
                    run_id=run_id,
                    batch_id=batch_id,
                    merged_at=merged_at,
                )
                cursor.execute(
                    self.sql("staging/insert_published_batch"),
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

    def record_rejected_batch(
        self,
        run_id: str,
        batch_id: str,
        batch_index: int,
        requested: int,
        reason: str,
        key_fingerprint: str,
        generation_id: str,
    ) -> None:
        """Audit a batch the source did not deliver completely (never landed, never published)."""
        with self.cursor() as cursor:
            cursor.execute(self.sql("landing/delete_batch_audit"), run_id=run_id, batch_id=batch_id)
            cursor.execute(
                self.sql("landing/insert_rejected_batch"),
                run_id=run_id,
                batch_id=batch_id,
                batch_index=batch_index,
                loaded_at=utc_now(),
                key_fingerprint=key_fingerprint,
                generation_id=generation_id,
                requested=requested,
                rejection_reason=reason,
            )

    def record_window(
        self, window: LoadWindow, status: str, run_id: str, persons: int | None, started_at: datetime
    ) -> None:
        """Log a window's outcome in the high-watermark table (append-only: one row per run)."""
        with self.cursor() as cursor:
            cursor.execute(
                self.sql("landing/insert_load_window"),
                window_key=window.key,
                window_kind=window.kind,
                window_start=window.start,
                window_end=window.end,
                status=status,
                run_id=run_id,
                persons=persons,
                started_at=started_at,
                finished_at=utc_now(),
            )

    def high_watermark(self, kind: str) -> date | None:
        """The end of the last completely loaded window of a kind."""
        with self.cursor() as cursor:
            rows = cursor.execute(self.sql("landing/select_high_watermark"), window_kind=kind)
        value = rows[0][0] if rows else None
        return value.date() if isinstance(value, datetime) else value

    def completed_windows(self, kind: str) -> set[str]:
        """Keys of the windows of a kind loaded completely at least once."""
        with self.cursor() as cursor:
            return {
                key
                for (key,) in cursor.execute(self.sql("landing/select_completed_windows"), window_kind=kind)
            }

    def read_quality_trend(self, runs: int) -> list[RunQuality]:
        """The last `runs` runs' batch verdicts and quarantine rates, oldest first (the report's trend).

        Read from landing.batches, the audit trail every engine keeps; the one place to switch to a
        monitoring view once the warehouse has one.
        """
        with self.cursor() as cursor:
            rows = cursor.execute(self.sql("reporting/select_quality_trend"), runs=runs)
        return [
            RunQuality(
                run_id=str(run_id),
                started_at=started.isoformat(timespec="seconds")
                if isinstance(started, datetime)
                else str(started),
                batches=int(batches),
                merged_batches=int(merged),
                rejected_batches=int(rejected),
                held_back_batches=int(held_back),
                merged_pct=None if merged_pct is None else float(merged_pct),
                quarantined_pct=None if quarantined_pct is None else float(quarantined_pct),
            )
            for run_id, started, batches, merged, rejected, held_back, merged_pct, quarantined_pct in rows
        ]

    def read_report(self, top_n: int = TOP_COUNTRIES) -> Report:
        """The report, read from the reporting models (with how published persons are protected)."""
        with self.cursor() as cursor:
            summary = cursor.execute(self.sql("reporting/select_report_summary"))[0]
            total, share, over_60, quarantined, rejected = summary
            top = cursor.execute(self.sql("reporting/select_top_gmail_countries"), top_n=top_n)
            groups = cursor.execute(self.sql("reporting/select_age_groups"))
            reasons = cursor.execute(self.sql("reporting/select_quarantine_reasons"))
            accounting = cursor.execute(self.sql("reporting/select_report_accounting"))[0]
            protection = cursor.execute(self.sql("reporting/select_k_anonymity"))
        _, fingerprint, reference_date, requested, received, erased, rejected_records = accounting
        if isinstance(reference_date, datetime):
            reference_date = reference_date.date()
        return Report(
            total_persons=int(total),
            gmail_germany_share_pct=None if share is None else float(share),
            top_gmail_countries=[{"country": country, "gmail_users": int(users)} for country, users in top],
            gmail_over_60=int(over_60),
            age_groups=[{"age_group": group, "persons": int(persons)} for group, persons in groups],
            quarantined=int(quarantined),
            quarantine_reasons={reason: int(records) for reason, records in reasons},
            rejected_batches=int(rejected),
            reference_date=reference_date.isoformat() if reference_date else None,
            key_fingerprint=fingerprint,
            accounting=accounting_of(
                int(requested) + int(rejected_records),
                int(received),
                int(total),
                int(quarantined),
                int(rejected_records),
                int(erased),
            ),
            k_anonymity=protection_counts(protection[0]) if protection else {},
        )
