"""Warehouse adapters behind one interface (`Warehouse`); `flows.targets` chooses which one a run uses."""

from __future__ import annotations

from flows.warehouse.base import MergeResult, Warehouse

__all__ = ["MergeResult", "Warehouse"]
