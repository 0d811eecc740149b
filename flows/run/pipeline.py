"""The Prefect flow: extract -> anonymise -> land -> load -> validate -> merge per batch; models; report.

Set-up and bookkeeping live in `flows.run.context`, the tasks in `flows.run.tasks`, the batch loop in
`flows.run.batches`, the end of the run in `flows.run.finish`; the environment is chosen in `flows.targets`.
"""

from __future__ import annotations

from typing import Any, cast

from prefect import State, flow
from prefect.states import Completed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.parameters import with_run_parameters
from flows.run.batches import process_batches
from flows.run.context import (
    PipelineFailed,
    hold_back_abandoned_batches,
    open_run,
    raise_if_stopped,
    stop_wins,
)
from flows.run.dbt_stage import build_models, models_of_run
from flows.run.finish import finish_run, full_disk_verdict
from flows.run.landed_rewrites import rewrite_pending_erasures
from flows.run.openlineage import run_lineage
from flows.run.publication import conclude_publication, open_publication
from flows.run.tasks import migrate_warehouse
from flows.runtime.alerts import notify_failure

FLOW_NAME = "persons-pipeline"


@flow(
    name=FLOW_NAME,
    on_failure=[notify_failure],
    on_crashed=[notify_failure],
    task_runner=ThreadPoolTaskRunner(max_workers=4),  # type: ignore[arg-type]  # Prefect's generic is too narrow
    persist_result=False,
)
@with_run_parameters
def persons_pipeline(**parameters: Any) -> dict[str, Any]:
    """Extract persons from the Faker API, anonymise, land, validate, merge, model, report."""
    # OpenLineage: START now, COMPLETE or FAIL (one-line reason) with the datasets' row counts at the end.
    with open_run(parameters) as run, run_lineage(run, FLOW_NAME):
        migrate_warehouse(run.warehouse)
        hold_back_abandoned_batches(run)  # a killed run's loaded batches; this run publishes them again
        rewrite_pending_erasures(run)  # landed files an erasure could not rewrite yet (rows already gone)
        # One key, one reference date: refuses a second key before any request; plans the pages not held.
        publication = open_publication(run)
        # dbt starts (import, parse) only if the models above staging changed since their last build here.
        with stop_wins(), models_of_run(run.warehouse, run.settings, run.data_dir, run.run_id) as models:
            # Per batch: extract -> anonymise -> land (raw-data worker), then load -> validate -> merge.
            process_batches(run, publication)  # each batch's outcome goes to the run's ledger
            raise_if_stopped()  # a stop during the batches ends the run here, even if its exception was lost
            run.close_worker()
            run.close_gate()
            conclude_publication(run, publication)
            # transform -> analytics -> reporting: dbt build if the models changed (views need no rebuild).
            with run.clock.measure("models"), full_disk_verdict(run, "the models"):
                built = build_models(run.warehouse, models, run.store, run.data_dir, run.run_id)
            run.ledger.models_built = bool(built["built"])
            outcome = finish_run(run, publication)
            # The run's final state says what it did in one line (the Prefect UI shows it beside the run).
            return cast(dict[str, Any], Completed(message=outcome["message"], data=outcome))


def run_pipeline(**parameters: Any) -> State[Any]:
    """Run the flow in this process and return its final state (never raises for a failed run); a parameter
    given as None is not given (the flow's default applies)."""
    given = {name: value for name, value in parameters.items() if value is not None}
    return cast(State[Any], persons_pipeline(**given, return_state=True))


__all__ = ["FLOW_NAME", "PipelineFailed", "persons_pipeline", "run_pipeline"]
