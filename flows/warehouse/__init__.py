"""The warehouse: the engine port (`Warehouse`, one adapter per engine) and the repositories written against
it, one module per domain; `flows.targets` chooses which engine a run uses."""

from __future__ import annotations

from flows.warehouse.base import Warehouse

__all__ = ["Warehouse"]
