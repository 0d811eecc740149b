"""persons-models/build: the dbt models and their docs built on their own (at deploy time, scheduled)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow
from prefect.runtime import flow_run
from pydantic import Field

from flows.parameters import resolve_parameters, with_declared_parameters
from flows.run.dbt_stage import build_models, models_of_run
from flows.run.slots import warehouse_slot
from flows.run.tasks import migrate_warehouse
from flows.runtime.alerts import notify_failure
from flows.settings import get_settings
from flows.targets import make_landing_store, make_warehouse, resolve_targets

FLOW_NAME = "persons-models"


@flow(name=FLOW_NAME, on_failure=[notify_failure], on_crashed=[notify_failure], persist_result=False)
@with_declared_parameters()
def persons_models(
    force: bool = Field(False, description="build even if the models did not change since their last build"),
    warehouse: str | None = None,
    data_dir: str | None = None,
) -> dict[str, Any]:
    """dbt build of transform, analytics and reporting if the models changed (always with force)."""
    settings = get_settings()
    params = resolve_parameters(settings, warehouse=warehouse, data_dir=data_dir)
    folder = params.data_dir.resolve()
    run_id = str(flow_run.get_id() or f"local-{datetime.now(UTC):%Y%m%dT%H%M%S}")
    targets = resolve_targets(settings, params)
    store = make_landing_store(targets, settings)
    with (
        warehouse_slot(targets, settings, folder),
        make_warehouse(targets, folder, settings) as target_warehouse,
    ):
        migrate_warehouse(target_warehouse)
        with models_of_run(target_warehouse, settings, folder, run_id, force=force) as build:
            return build_models(target_warehouse, build, store, folder, run_id)
