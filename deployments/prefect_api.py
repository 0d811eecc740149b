"""What `make deploy` and `make undeploy` ask the Prefect API (PREFECT_API_URL): the work pool, the
project's deployments (those prefect.yaml declares, in the environment's pool) and the project's automations.

A pool `make deploy` created carries POOL_MARK as its description, so `make undeploy` removes that pool and
never one made by hand or by an earlier tool.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml

ROOT = Path(__file__).resolve().parents[1]
POOL_MARK = "Created by make deploy (persons-pipeline); make undeploy removes it."


@dataclass(frozen=True)
class Schedule:
    """One schedule of a deployment, as a person reads it."""

    id: UUID
    active: bool
    when: str


@dataclass(frozen=True)
class Deployed:
    """One of the project's deployments on the API."""

    name: str  # flow/deployment, as `prefect deployment run` takes it
    id: UUID
    schedules: tuple[Schedule, ...]


def declared_deployments(path: Path = ROOT / "prefect.yaml") -> list[tuple[str, str]]:
    """(deployment name, entrypoint) of every deployment prefect.yaml declares, in its order."""
    spec = yaml.safe_load(path.read_text())
    return [(entry["name"], entry["entrypoint"]) for entry in spec["deployments"]]


def automation_names(folder: Path = ROOT / "deployments" / "automations") -> list[str]:
    """The names of the project's automations (deployments/automations/*.yaml)."""
    return [yaml.safe_load(path.read_text())["name"] for path in sorted(folder.glob("*.yaml"))]


def describe_schedule(schedule: Any) -> str:
    """'daily at 06:00 Europe/Berlin' for a daily cron, else the cron or the schedule's text."""
    cron, timezone = getattr(schedule, "cron", None), getattr(schedule, "timezone", None) or "UTC"
    if cron is None:
        return str(schedule)
    daily = re.fullmatch(r"(\d{1,2}) (\d{1,2}) \* \* \*", cron)
    return f"daily at {int(daily[2]):02d}:{int(daily[1]):02d} {timezone}" if daily else f"{cron} {timezone}"


def api_problem() -> str | None:
    """Why the Prefect API does not answer, in a few words; None when it does."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415 - Prefect only where it is asked

    with get_client(sync_client=True) as client:
        error = client.api_healthcheck()
    if error is None:
        return None
    return f"{type(error).__name__}: {error}".splitlines()[0][:200]


def refusal(error: Any) -> str:
    """An API error (PrefectHTTPStatusError) in one line: the status and the server's detail."""
    response = error.response
    try:
        body = response.json()
    except ValueError:
        body = response.text
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return f"{response.request.method} {response.request.url.path}: {response.status_code} {detail}"[:300]


def ensure_pool(name: str, kind: str, template: dict[str, Any]) -> str:
    """Create the pool (marked as made here) or update its base job template; 'created' or 'updated'."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate  # noqa: PLC0415
    from prefect.exceptions import ObjectNotFound  # noqa: PLC0415

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            pool = WorkPoolCreate(name=name, type=kind, base_job_template=template, description=POOL_MARK)
            client.create_work_pool(pool)
            return "created"
        # The repository's template wins: new stack outputs (image, roles) reach the pool.
        client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
        return "updated"


def project_deployments(pool: str) -> list[Deployed]:
    """The deployments prefect.yaml declares that are deployed to `pool`, in prefect.yaml's order."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.client.schemas.filters import (  # noqa: PLC0415
        DeploymentFilter,
        DeploymentFilterName,
        WorkPoolFilter,
        WorkPoolFilterName,
    )

    declared = declared_deployments()
    with get_client(sync_client=True) as client:
        found = client.read_deployments(
            deployment_filter=DeploymentFilter(
                name=DeploymentFilterName(any_=[name for name, _ in declared])
            ),
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
        )
        ours = [deployment for deployment in found if (deployment.name, deployment.entrypoint) in declared]
        flows = {deployment.flow_id: client.read_flow(deployment.flow_id).name for deployment in ours}
    ours.sort(key=lambda deployment: declared.index((deployment.name, deployment.entrypoint or "")))
    return [
        Deployed(
            f"{flows[deployment.flow_id]}/{deployment.name}",
            deployment.id,
            tuple(
                Schedule(item.id, item.active, describe_schedule(item.schedule))
                for item in deployment.schedules
            ),
        )
        for deployment in ours
    ]


def delete_deployments(deployments: list[Deployed]) -> None:
    """Delete these deployments (the server drops their scheduled runs; past runs stay)."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415

    with get_client(sync_client=True) as client:
        for deployment in deployments:
            client.delete_deployment(deployment.id)


def pool_made_here(name: str) -> bool | None:
    """Whether `make deploy` created the pool (its mark); None if there is no such pool."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.exceptions import ObjectNotFound  # noqa: PLC0415

    with get_client(sync_client=True) as client:
        try:
            return client.read_work_pool(name).description == POOL_MARK
        except ObjectNotFound:
            return None


def deployments_in_pool(name: str) -> int:
    """How many deployments (anyone's) use the pool."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName  # noqa: PLC0415

    with get_client(sync_client=True) as client:
        pool_filter = WorkPoolFilter(name=WorkPoolFilterName(any_=[name]))
        return len(client.read_deployments(work_pool_filter=pool_filter))


def delete_pool(name: str) -> None:
    """Delete the work pool."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415

    with get_client(sync_client=True) as client:
        client.delete_work_pool(name)


def existing_automations(names: list[str]) -> list[str]:
    """Those of the named automations that exist on the API."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415

    with get_client(sync_client=True) as client:
        return [name for name in names if client.read_automations_by_name(name)]
