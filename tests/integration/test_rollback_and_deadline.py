"""The publish transaction's rollback on DuckDB (no connection in transaction state) and the run deadline."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from faker_twin import FakerTwin, TwinFaults
from prefect import flow
from prefect.transactions import transaction

from flows.landing.files import LandedBatch, LocalLandingStore
from flows.run.tasks import load_batch, registered_warehouse
from flows.settings import get_settings
from flows.warehouse.duckdb_warehouse import DuckDBWarehouse
from flows.warehouse.generations import serving_generation
from tests.integration.conftest import FlowRun


class GateWentAway(RuntimeError):
    """What failed between loading and merging, in this test."""


@flow(persist_result=False)
def load_then_fail(data_dir: str, landed: dict[str, object], run_id: str) -> None:
    """Load a landed batch inside the publish transaction, then fail before the merge."""
    fields = {item.name for item in dataclasses.fields(LandedBatch)}
    batch = LandedBatch(**{key: value for key, value in landed.items() if key in fields})  # type: ignore[arg-type]
    with (
        DuckDBWarehouse(Path(data_dir) / "warehouse.duckdb") as warehouse,
        registered_warehouse(run_id, warehouse),
        transaction() as txn,  # left first: its rollback finds the warehouse by run id
    ):
        txn.set("run_id", run_id)
        txn.set("batch_id", batch.batch_id)
        generation = serving_generation(warehouse)
        assert generation is not None
        load_batch(warehouse, LocalLandingStore(Path(data_dir) / "landing"), batch, run_id, generation)
        raise GateWentAway("after loading")


def test_a_failure_after_loading_marks_the_batch_held_back_on_duckdb(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun]
) -> None:
    first = run_pipeline(twin.url, total=400, page_size=100, pages_per_batch=2)
    assert first.state.is_completed(), first.state.message
    manifest = json.loads(next((first.data_dir / "landing").rglob("manifest.json")).read_text())
    landed = manifest["batches"][0]

    state = load_then_fail(str(first.data_dir), landed, "rollback-run", return_state=True)

    assert state.is_failed() and "GateWentAway" in (state.message or "")
    assert "pickle" not in (state.message or "")
    rows = first.query(
        "select status from landing.batches where run_id = ? and batch_id = ?",
        ["rollback-run", landed["batch_id"]],
    )
    assert rows == [("held_back",)]  # loaded, never merged, visibly so
    assert first.query("select count(*) from staging.persons") == [(400,)]


def test_a_page_that_cannot_be_fetched_before_the_deadline_fails_the_run_naming_it(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERSONS_RUN_DEADLINE_S", "60")
    get_settings.cache_clear()
    twin.set_faults(TwinFaults(rate_limit_every=1, retry_after_s=3600))  # the server asks for an hour

    run = run_pipeline(twin.url, total=400, page_size=100, pages_per_batch=2)

    assert run.state.is_failed()
    message = run.state.message or ""
    assert "not fetched before the run deadline (PERSONS_RUN_DEADLINE_S)" in message, message
    assert "HTTP 429 (Retry-After 3600 s)" in message and "page 0 (_seed=" in message
