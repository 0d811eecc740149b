"""Turns on a warehouse: a Prefect global concurrency limit per warehouse, so writers do not collide."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency

from flows.settings import PipelineSettings
from flows.targets import Targets


@contextmanager
def warehouse_slot(targets: Targets, settings: PipelineSettings, data_dir: Path) -> Iterator[None]:
    """Take a turn on the warehouse (1 writer per DuckDB file, a few per Snowflake database)."""
    name, limit = targets.warehouse_slot(settings, data_dir)
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, limit)
    logger = get_run_logger()
    waited = time.perf_counter()
    with concurrency(name, occupy=1, timeout_seconds=settings.warehouse_slot_timeout_s, strict=True):
        logger.info(
            "event=warehouse_slot name=%s limit=%d waited_s=%.2f", name, limit, time.perf_counter() - waited
        )
        yield
