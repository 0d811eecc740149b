"""The Prefect events the monitor emits (names, ids, metrics and thresholds: never a person's value).

deployments/automations/*.yaml match them: a breach notifies at once; a warehouse whose last
`persons.batch.merged` (one per merged batch, as it is merged) is older than the freshness threshold notifies
proactively.
"""

from __future__ import annotations

import hashlib
from typing import Any

from prefect.events import emit_event

BREACH = "persons.monitoring.breach"
BATCH_MERGED = "persons.batch.merged"
RUN_FAILED = "persons.run.failed"


def warehouse_resource(environment: str, location: str) -> dict[str, str]:
    """The warehouse as a Prefect resource: one id per warehouse (the automations keep one clock each)."""
    digest = hashlib.sha256(location.encode()).hexdigest()[:16]
    return {
        "prefect.resource.id": f"persons.warehouse.{digest}",
        "prefect.resource.name": f"persons warehouse ({environment})",
        "persons.environment": environment,
        "persons.warehouse.location": location,
    }


def emit(event: str, resource: dict[str, str], payload: dict[str, Any]) -> None:
    """Emit one event (the run's flow run and flow are attached as related resources by Prefect)."""
    emit_event(event=event, resource=resource, payload=payload)
