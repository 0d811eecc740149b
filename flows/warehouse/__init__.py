"""Warehouse adapters behind one interface; `make_warehouse` is the one place the engine is chosen."""

from __future__ import annotations

from pathlib import Path

from flows.settings import PipelineSettings
from flows.warehouse.base import MergeResult, Warehouse


def make_warehouse(kind: str, data_dir: Path, settings: PipelineSettings) -> Warehouse:
    """The warehouse for this run: DuckDB in <data_dir>/warehouse.duckdb."""
    if kind == "duckdb":
        from flows.warehouse.duckdb_warehouse import DuckDBWarehouse  # noqa: PLC0415

        return DuckDBWarehouse(
            data_dir / "warehouse.duckdb",
            lock_timeout_s=settings.duckdb_lock_timeout_s,
            threads=settings.duckdb_threads,
            memory_limit=settings.duckdb_memory_limit,
        )
    raise ValueError(f"unknown warehouse {kind!r}")


__all__ = ["MergeResult", "Warehouse", "make_warehouse"]
