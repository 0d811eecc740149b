"""Where a run writes: the one place where the environment (local, dev, prod) picks warehouse and landing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from flows.landing.files import LandingStore, LocalLandingStore
from flows.parameters import RunParameters
from flows.settings import PipelineSettings
from flows.warehouse import Warehouse

WarehouseKind = Literal["duckdb", "snowflake"]


@dataclass(frozen=True)
class Targets:
    """The resolved destinations of one run (no credentials)."""

    environment: str
    warehouse: WarehouseKind
    landing_url: str
    snowflake_database: str | None

    @property
    def lands_in_s3(self) -> bool:
        """Whether files land in a bucket."""
        return self.landing_url.startswith("s3://")

    def warehouse_slot(self, settings: PipelineSettings, data_dir: Path) -> tuple[str, int]:
        """The concurrency limit guarding this warehouse: its name and how many runs may write at once."""
        place = (
            str(data_dir / "warehouse.duckdb") if self.warehouse == "duckdb" else str(self.snowflake_database)
        )
        name = f"persons-warehouse-{self.warehouse}-{hashlib.sha256(place.encode()).hexdigest()[:10]}"
        # DuckDB allows one writing process per file; Snowflake takes several runs.
        return name, 1 if self.warehouse == "duckdb" else settings.snowflake.concurrent_runs


def resolve_targets(settings: PipelineSettings, params: RunParameters) -> Targets:
    """Parameters win; otherwise local = DuckDB + <data_dir>/landing, dev/prod = Snowflake + their bucket."""
    environment = settings.environment
    if environment == "local":
        warehouse: WarehouseKind = params.warehouse or "duckdb"
        landing = params.landing_url or str((params.data_dir / "landing").resolve())
        database = settings.snowflake.database
    else:
        warehouse = params.warehouse or "snowflake"
        landing = params.landing_url or (
            settings.dev_landing_url if environment == "dev" else settings.prod_landing_url
        )
        database = settings.snowflake.database or (
            settings.dev_snowflake_database if environment == "dev" else settings.prod_snowflake_database
        )
    return Targets(environment, warehouse, landing, database if warehouse == "snowflake" else None)


def make_landing_store(targets: Targets, settings: PipelineSettings) -> LandingStore:
    """A folder store, or an S3 store through prefect-aws."""
    if targets.lands_in_s3:
        from flows.landing.s3 import S3LandingStore  # noqa: PLC0415 - prefect-aws only when landing in S3

        return S3LandingStore.from_url(targets.landing_url, settings)
    return LocalLandingStore(Path(targets.landing_url))


def duckdb_memory_limit(settings: PipelineSettings, rows_per_batch: int) -> str:
    """The configured cap, or for `auto` 128 MB - raised for big batches, whose load must fit at once."""
    if settings.duckdb.memory_limit != "auto":
        return settings.duckdb.memory_limit
    # 128 MB: measured ~50 MiB less peak RSS than 256 MB at 100,000-row batches, no slower.
    return f"{max(128, rows_per_batch * 1200 // 1_000_000)}MB"


def make_warehouse(
    targets: Targets,
    data_dir: Path,
    settings: PipelineSettings,
    rows_per_batch: int = 200_000,
    read_only: bool = False,
) -> Warehouse:
    """The warehouse adapter for the run (`read_only`: for a reader such as `persons-pipeline status`)."""
    if targets.warehouse == "snowflake":
        from flows.warehouse.snowflake_warehouse import SnowflakeWarehouse  # noqa: PLC0415

        return SnowflakeWarehouse.from_settings(settings, database=targets.snowflake_database)
    from flows.warehouse.duckdb_warehouse import DuckDBWarehouse  # noqa: PLC0415

    return DuckDBWarehouse(
        data_dir / "warehouse.duckdb",
        lock_timeout_s=settings.duckdb.lock_timeout_s,
        threads=settings.duckdb.threads,
        memory_limit=duckdb_memory_limit(settings, rows_per_batch),
        report_memory_limit=settings.duckdb.report_memory_limit,
        read_only=read_only,
    )


def result_storage(targets: Targets, store: LandingStore, data_dir: Path) -> Any:
    """Where cached landed-batch results live: beside the landed files (the cache is valid only with them)."""
    if targets.lands_in_s3:
        from flows.landing.s3 import S3LandingStore  # noqa: PLC0415

        assert isinstance(store, S3LandingStore)
        storage = store.bucket.model_copy(update={"bucket_folder": f"{store.prefix}/.prefect-cache"})
        # Prefect wants result storage saved server-side; the block holds names and an endpoint, no secret.
        name = "persons-cache-" + hashlib.sha256(store.identity.encode()).hexdigest()[:12]
        storage.save(name, overwrite=True)
        return storage
    return data_dir / ".prefect-cache"
