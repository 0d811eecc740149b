"""Failure alerts: a flow hook that posts the run, its failed steps and the data docs link to a webhook.

The webhook URL (it usually embeds a token) comes from a Prefect Secret block named in the settings, or from
PERSONS_ALERT_WEBHOOK_URL. The message carries names, ids, counts and paths - never a person's value. Sending
is best effort: an alert that cannot be delivered is logged and never changes the run's outcome.

One failure, one alert: where the Prefect API runs the `persons-run-failed` automation (deployments/
automations/run-failed.yaml, which also catches runs that died without running their hooks), the hook leaves
the alert to it and only logs that it did.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception_type, retry_if_result, stop_after_attempt, wait_incrementing

from flows.settings import PipelineSettings, get_settings

logger = logging.getLogger(__name__)
DOCS_IN_MESSAGE = re.compile(r"data docs: (\S+)")
# The name of the automation that alerts on failed and crashed runs (a test keeps it equal to the YAML's).
RUN_FAILED_AUTOMATION = "persons-run-failed"


def webhook_url(settings: PipelineSettings) -> str | None:
    """Where alerts go, if anywhere."""
    if settings.alerts.webhook_block:
        from prefect.blocks.system import Secret  # noqa: PLC0415

        return str(Secret.load(settings.alerts.webhook_block).get())  # type: ignore[union-attr]
    return settings.alerts.webhook_url.get_secret_value() if settings.alerts.webhook_url else None


def automation_alerts(name: str = RUN_FAILED_AUTOMATION) -> bool:
    """Whether the Prefect API has the failure automation enabled (False when that cannot be told)."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415

    try:
        with get_client(sync_client=True) as client:
            return any(automation.enabled for automation in client.read_automations_by_name(name))
    except Exception as exc:  # an alert is better twice than never: the hook then sends its own
        logger.warning("event=automation_check_failed automation=%s error=%s", name, type(exc).__name__)
        return False


def failed_steps(flow_run_id: Any) -> list[str]:
    """Names of the run's task runs and subflow runs that failed or crashed."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.client.schemas.filters import (  # noqa: PLC0415
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
        FlowRunFilterState,
        FlowRunFilterStateType,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType  # noqa: PLC0415

    bad = [StateType.FAILED, StateType.CRASHED]
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            task_run_filter=TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=bad))),
        )
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=bad)),
            )
        )
    names = {re.sub(r"-[0-9a-f]{3}$", "", task.name) for task in tasks}
    names |= {f"subflow {child.name}" for child in children}
    return sorted(names)


def data_docs_of(message: str, parameters: dict[str, Any], flow_run_id: Any) -> str | None:
    """The run's data docs: as its failure message names them, else where the run writes them."""
    found = DOCS_IN_MESSAGE.search(message or "")
    if found:
        return found.group(1).rstrip(";")
    data_dir = parameters.get("data_dir") or str(get_settings().data_dir)
    index = Path(data_dir).resolve() / "data_docs" / str(flow_run_id) / "index.html"
    return str(index) if index.exists() else None


def build_alert(
    flow_name: str, flow_run: Any, state: Any, steps: list[str], docs: str | None
) -> dict[str, Any]:
    """The JSON body of an alert (Slack-compatible `text`, plus the fields on their own)."""
    message = (state.message or "")[:2000]
    text = (
        f"{flow_name} run '{flow_run.name}' ended {state.name}: "
        f"failed step(s): {', '.join(steps) or 'none recorded'}; data docs: {docs or 'not written'}"
    )
    return {
        "text": text,
        "flow": flow_name,
        "flow_run": flow_run.name,
        "flow_run_id": str(flow_run.id),
        "state": state.name,
        "failed_steps": steps,
        "data_docs": docs,
        "message": message,
    }


def send(url: str, body: dict[str, Any], attempts: int = 3) -> bool:
    """POST the alert; a few quick retries; True if the receiver took it."""
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_incrementing(start=0.5, increment=0.5),
        retry=retry_if_result(lambda delivered: not delivered) | retry_if_exception_type(httpx.HTTPError),
        retry_error_callback=lambda state: False,
    )
    return bool(retrying(_post, url, body))


def _post(url: str, body: dict[str, Any]) -> bool:
    return httpx.post(url, json=body, timeout=10).status_code < 300


def notify_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow hook for on_failure and on_crashed."""
    try:
        url = webhook_url(get_settings())
        if not url:
            return
        if automation_alerts():
            logger.info(
                "event=alert_left_to_automation flow_run_id=%s automation=%s",
                flow_run.id,
                RUN_FAILED_AUTOMATION,
            )
            return
        body = build_alert(
            flow.name,
            flow_run,
            state,
            failed_steps(flow_run.id),
            data_docs_of(state.message or "", dict(flow_run.parameters or {}), flow_run.id),
        )
        if not send(url, body):
            logger.warning("event=alert_not_delivered flow_run_id=%s", flow_run.id)
    except Exception as exc:
        logger.warning("event=alert_failed flow_run_id=%s error=%s", flow_run.id, type(exc).__name__)
