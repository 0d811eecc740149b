"""The load windows' repository: the append-only log of daily and backfill windows and its high watermark."""

from __future__ import annotations

from datetime import date, datetime

from flows.warehouse.base import Warehouse, utc_now
from flows.windows import LoadWindow


def record_window(
    warehouse: Warehouse,
    window: LoadWindow,
    status: str,
    run_id: str,
    persons: int | None,
    started_at: datetime,
) -> None:
    """Log a window's outcome in the high-watermark table (append-only: one row per run)."""
    with warehouse.cursor() as cursor:
        cursor.execute(
            warehouse.sql("landing/insert_load_window"),
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


def high_watermark(warehouse: Warehouse, kind: str) -> date | None:
    """The end of the last completely loaded window of a kind."""
    with warehouse.cursor() as cursor:
        rows = cursor.execute(warehouse.sql("landing/select_high_watermark"), window_kind=kind)
    value = rows[0][0] if rows else None
    return value.date() if isinstance(value, datetime) else value


def completed_windows(warehouse: Warehouse, kind: str) -> set[str]:
    """Keys of the windows of a kind loaded completely at least once."""
    with warehouse.cursor() as cursor:
        rows = cursor.execute(warehouse.sql("landing/select_completed_windows"), window_kind=kind)
    return {key for (key,) in rows}
