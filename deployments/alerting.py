"""The Prefect automations of deployments/automations/*.yaml: filled in, validated, created or updated.

`make deploy` calls `deploy_automations`: the alert webhook (PERSONS_ALERT_WEBHOOK_URL, from the caller's
environment: it usually embeds a token) is saved as a Prefect Webhook block named
PERSONS_AUTOMATION_WEBHOOK_BLOCK; the automations call it. Their `${VARIABLES}` are the block's id and the
freshness window derived from PERSONS_MONITOR_FRESHNESS_HOURS (declared once, in flows/settings.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml

HERE = Path(__file__).resolve().parent / "automations"
DEFAULT_WEBHOOK_BLOCK = "persons-alerts"
_PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")


def fill_placeholders(text: str, values: Mapping[str, str]) -> str:
    """`${NAME}` replaced by its value; a name without a value is an error (names it, never a value)."""
    missing = sorted({name for name in _PLACEHOLDER.findall(text) if name not in values})
    if missing:
        raise KeyError(f"automation file needs {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda match: values[match[1]], text)


def automation_values(
    webhook_block_id: UUID | str, freshness_hours: float, within_s: float | None = None
) -> dict[str, str]:
    """The values the automation files take (within_s overrides the freshness window, e.g. in tests)."""
    seconds = within_s if within_s is not None else freshness_hours * 3600
    return {
        "PERSONS_AUTOMATION_WEBHOOK_BLOCK_ID": str(webhook_block_id),
        "PERSONS_MONITOR_FRESHNESS_S": str(int(seconds)),
    }


def load_automations(values: Mapping[str, str], folder: Path = HERE) -> list[Any]:
    """Every automation file, filled in and validated as a prefect.automations.Automation."""
    from prefect.automations import Automation  # noqa: PLC0415 - Prefect only where automations are made

    return [
        Automation.model_validate(yaml.safe_load(fill_placeholders(path.read_text(), values)))
        for path in sorted(folder.glob("*.yaml"))
    ]


def save_webhook_block(name: str, url: str) -> UUID:
    """Create or overwrite the Webhook block the automations call; its id."""
    from prefect.blocks.webhook import Webhook  # noqa: PLC0415

    block_id: UUID = Webhook(url=url, method="POST").save(name, overwrite=True)  # type: ignore[arg-type,assignment]
    return block_id


def existing_webhook_block(name: str) -> UUID | None:
    """The id of a saved Webhook block of that name, if there is one."""
    from prefect.blocks.webhook import Webhook  # noqa: PLC0415

    try:
        block = Webhook.load(name)
    except ValueError:
        return None
    block_id: UUID | None = getattr(block, "_block_document_id", None)
    return block_id


def apply_automations(automations: list[Any]) -> list[str]:
    """Create each automation, or update the one of the same name (idempotent); their names."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415
    from prefect.events.schemas.automations import AutomationCore  # noqa: PLC0415

    names = []
    with get_client(sync_client=True) as client:
        for automation in automations:
            core = AutomationCore(**automation.model_dump(exclude={"id"}))
            existing = client.read_automations_by_name(automation.name)
            if existing:
                client.update_automation(existing[0].id, core)
                for duplicate in existing[1:]:
                    client.delete_automation(duplicate.id)
                automation.id = existing[0].id
            else:
                automation.id = client.create_automation(core)
            names.append(automation.name)
    return names


def delete_automations(names: list[str]) -> None:
    """Remove the named automations (tests clean up after themselves)."""
    from prefect.client.orchestration import get_client  # noqa: PLC0415

    with get_client(sync_client=True) as client:
        for name in names:
            for automation in client.read_automations_by_name(name):
                client.delete_automation(automation.id)


def deploy_automations(
    webhook_url: str | None,
    block_name: str = DEFAULT_WEBHOOK_BLOCK,
    freshness_hours: float = 26.0,
    within_s: float | None = None,
) -> list[str]:
    """Save the webhook block (if a URL is given) and apply every automation; [] if there is no webhook."""
    if webhook_url:
        block_id: UUID | None = save_webhook_block(block_name, webhook_url)
    else:
        block_id = existing_webhook_block(block_name)
    if block_id is None:
        return []
    return apply_automations(load_automations(automation_values(block_id, freshness_hours, within_s)))
