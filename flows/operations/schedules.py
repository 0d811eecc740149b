"""Scheduled and backfill flows around `persons_pipeline`: incremental from the warehouse's high-watermark.

- `persons_daily` (the scheduled job) reads the last loaded day from `landing.load_windows`, then loads every
  day after it up to today, oldest first, one pipeline subflow per day: a missed day is caught up by the next
  run, and a day that fails stops the run so that the watermark never skips it.
- `persons_backfill` splits a birthday range (or a range of run days) into windows and fans them out as
  child flow runs of a deployment (`run_deployment`), so any number of workers can share them. Windows
  already loaded are skipped, a failed window can be rerun alone, and reloading a window changes nothing.
"""

from __future__ import annotations

import time
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from pydantic import Field

from flows.parameters import ParameterError, resolve_parameters, with_declared_parameters
from flows.run.pipeline import run_pipeline
from flows.run.slots import warehouse_slot
from flows.run.tasks import IO_RETRIES
from flows.runtime.alerts import notify_failure
from flows.settings import get_settings
from flows.targets import make_warehouse, resolve_targets
from flows.warehouse.watermarks import completed_windows, high_watermark
from flows.windows import LoadWindow, birthday_windows, daily_windows, date_windows

SCHEDULE_TIMEZONE = ZoneInfo("Europe/Berlin")
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@task(
    name="read-high-watermark",
    task_run_name="read-high-watermark",  # one of its kind per run: no random suffix
    cache_policy=NO_CACHE,
    persist_result=False,
    **IO_RETRIES,
)
def read_loaded_windows(
    kind: str, data_dir: str | None, warehouse: str | None, landing_url: str | None
) -> dict[str, Any]:
    """The warehouse's high-watermark and completed windows of a kind (migrating the schema if needed)."""
    settings = get_settings()
    params = resolve_parameters(settings, data_dir=data_dir, warehouse=warehouse, landing_url=landing_url)
    targets = resolve_targets(settings, params)
    data_path = params.data_dir.resolve()
    with warehouse_slot(targets, settings, data_path), make_warehouse(targets, data_path, settings) as house:
        house.migrate()
        return {"high_watermark": high_watermark(house, kind), "completed": completed_windows(house, kind)}


@flow(name="persons-daily", persist_result=False, on_failure=[notify_failure], on_crashed=[notify_failure])
@with_declared_parameters(persons_per_day="total")
def persons_daily(
    as_of: date | None = Field(None, description="the last day to load (default: today in Berlin)"),
    persons_per_day: int | None = None,
    first_day: date | None = Field(
        None, description="the first day ever to load, where nothing was loaded yet (default: as_of)"
    ),
    max_catch_up_days: Annotated[int, Field(ge=1, le=3660)] = Field(
        31, description="the most days one run catches up; the next run goes on from there"
    ),
    shards: int | None = None,
    shard_pages: int | None = None,
    api_url: str | None = None,
    data_dir: str | None = None,
    warehouse: str | None = None,
    landing_url: str | None = None,
) -> dict[str, Any]:
    """Load every day after the warehouse's last loaded day up to `as_of` (default: today in Berlin)."""
    logger = get_run_logger()
    until = as_of or datetime.now(SCHEDULE_TIMEZONE).date()
    if max_catch_up_days < 1:
        raise ParameterError("--max-catch-up-days: must be at least 1")
    loaded = read_loaded_windows("daily", data_dir, warehouse, landing_url)
    days = daily_windows(loaded["high_watermark"], until, first_day, max_catch_up_days)
    logger.info(
        "event=daily_plan high_watermark=%s until=%s days=%d",
        loaded["high_watermark"],
        until.isoformat(),
        len(days),
    )
    done = []
    for window in days:
        state = run_pipeline(
            window=window.key,
            total=persons_per_day,
            shards=shards,
            shard_pages=shard_pages,
            api_url=api_url,
            data_dir=data_dir,
            warehouse=warehouse,
            landing_url=landing_url,
        )
        if not state.is_completed():
            raise RuntimeError(
                f"day {window.key} failed ({state.message}); the next run starts again from it"
            )
        done.append(window.key)
    if not days:
        logger.info("event=daily_nothing_new high_watermark=%s", loaded["high_watermark"])
    return {"loaded": done, "high_watermark": (days[-1].end if days else loaded["high_watermark"])}


def plan_backfill(
    birthday_start: date | None,
    birthday_end: date | None,
    window_years: int,
    start_day: date | None,
    end_day: date | None,
) -> list[LoadWindow]:
    """Birthday windows, or daily windows over run days; exactly one of the two ranges must be given."""
    if (birthday_start or birthday_end) and (start_day or end_day):
        raise ParameterError("give either a birthday range or a range of days, not both")
    if birthday_start and birthday_end:
        return birthday_windows(birthday_start, birthday_end, window_years)
    if start_day and end_day:
        return date_windows(start_day, end_day)
    raise ParameterError("give --birthday-start and --birthday-end, or --start-day and --end-day")


def window_parameters(kind: str, reference_date: date | None, **given: Any) -> dict[str, Any]:
    """What every window's run is given: the backfill's own parameters; birthday windows share one reference
    date (default: today in Berlin), so that they all publish into one generation."""
    if kind == "birthdays":
        given["reference_date"] = (reference_date or datetime.now(SCHEDULE_TIMEZONE).date()).isoformat()
    return given


def submit_windows(windows: list[LoadWindow], common: dict[str, Any], deployment: str) -> dict[str, UUID]:
    """Start each window as a child run of `deployment` (not waiting): its flow run id by window."""
    children = {}
    for window in windows:
        parameters = {
            name: value for name, value in {**common, "window": window.key}.items() if value is not None
        }
        run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync call in a sync flow
            deployment,
            parameters=parameters,
            timeout=0,
            flow_run_name=f"window-{window.key.replace(':', '-')}",
        )
        children[window.key] = run.id
        get_run_logger().info("event=window_submitted window=%s flow_run_id=%s", window.key, run.id)
    return children


@flow(name="persons-backfill", persist_result=False, on_failure=[notify_failure], on_crashed=[notify_failure])
@with_declared_parameters()
def persons_backfill(
    birthday_start: date | None = None,
    birthday_end: date | None = None,
    window_years: Annotated[int, Field(ge=1, le=200)] = Field(
        10, description="years of birthdays per window (with birthday_start and birthday_end)"
    ),
    start_day: date | None = Field(None, description="first day of a range of daily windows (with end_day)"),
    end_day: date | None = Field(None, description="last day of a range of daily windows (with start_day)"),
    persons_per_window: Annotated[int, Field(ge=1, le=100_000_000)] = Field(
        1000, description="persons each window's run extracts"
    ),
    reference_date: date | None = None,
    deployment: str = Field(
        "persons-pipeline/adhoc", description="the deployment each window runs as (flow/deployment)"
    ),
    force: bool = Field(False, description="run windows that were loaded completely before, too"),
    timeout_s: Annotated[float, Field(gt=0, le=7 * 86_400)] = Field(
        6 * 3600, description="how long to wait for every window's run"
    ),
    shards: int | None = None,
    shard_pages: int | None = None,
    api_url: str | None = None,
    data_dir: str | None = None,
    warehouse: str | None = None,
    landing_url: str | None = None,
) -> dict[str, Any]:
    """Fan windows out as child runs of `deployment`, wait for all, fail naming the windows that failed."""
    logger = get_run_logger()
    windows = plan_backfill(birthday_start, birthday_end, window_years, start_day, end_day)
    kind = windows[0].kind
    completed = set() if force else read_loaded_windows(kind, data_dir, warehouse, landing_url)["completed"]
    todo = [window for window in windows if window.key not in completed]
    logger.info(
        "event=backfill_plan windows=%d already_loaded=%d to_run=%d",
        len(windows),
        len(windows) - len(todo),
        len(todo),
    )
    common = window_parameters(
        kind,
        reference_date,
        total=persons_per_window,
        shards=shards,
        shard_pages=shard_pages,
        api_url=api_url,
        data_dir=str(Path(data_dir).resolve()) if data_dir else None,
        warehouse=warehouse,
        landing_url=landing_url,
    )
    children = submit_windows(todo, common, deployment)
    raise_for_failed_windows(wait_for_runs(children, timeout_s), deployment)
    return {
        "windows": [window.key for window in windows],
        "ran": sorted(children),
        "skipped": sorted(completed),
    }


def raise_for_failed_windows(states: dict[str, str], deployment: str) -> None:
    """Fail the backfill naming the windows whose runs did not complete, and how to rerun them."""
    failed = sorted(key for key, state in states.items() if state != "COMPLETED")
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(states)} windows did not complete: {', '.join(failed)}; rerun the "
            f"backfill (loaded windows are skipped) or one window with: prefect deployment run "
            f"'{deployment}' --param window=<window>"
        )


def wait_for_runs(runs: dict[str, Any], timeout_s: float, poll_s: float = 2.0) -> dict[str, str]:
    """Final state names of flow runs, polling until all are final or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    states: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        while True:
            for key, run_id in runs.items():
                if states.get(key) in FINAL_STATES:
                    continue
                state = client.read_flow_run(run_id).state
                states[key] = state.type.value if state else "PENDING"
            if all(value in FINAL_STATES for value in states.values()) or time.monotonic() > deadline:
                return states
            time.sleep(poll_s)
