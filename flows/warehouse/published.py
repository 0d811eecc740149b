"""The published state's types: a generation (one key, one reference date) and the batches it is made of.

Shared by the engine adapters (`flows.warehouse.base`) and the generations' bookkeeping
(`flows.warehouse.generations`), so that neither imports the other's module for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

STAGING = "staging.persons"
REBUILD = "staging.persons_rebuild"
LANDING_TABLES = ("landing.persons", "landing.quarantined_persons")


@dataclass(frozen=True)
class Generation:
    """The generation a run publishes into."""

    generation_id: str
    key_fingerprint: str
    reference_date: date
    rebuilding: bool = False

    @property
    def target(self) -> str:
        """The table its batches merge into."""
        return REBUILD if self.rebuilding else STAGING


@dataclass(frozen=True)
class PublishedBatch:
    """A batch of a generation: its population (locale, birthday range) and pages."""

    batch_id: str
    page_query: dict[str, Any]
    pages: list[tuple[int, int, int]]  # (page number, seed, quantity)
