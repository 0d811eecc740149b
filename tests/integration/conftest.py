"""Integration fixtures: every test here runs real flows against the session's Prefect server."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import PrefectServer

REFERENCE_DATE = date(2026, 6, 15)


@pytest.fixture(autouse=True)
def _integration(prefect_client: PrefectServer, fast_settings: None) -> None:
    """Mark the dependency: integration tests always talk to the session's Prefect server."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration carries the integration marker."""
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@dataclass
class FlowRun:
    """A finished run: its Prefect state, report JSON and data folder."""

    state: Any
    data_dir: Path
    report_path: Path

    @property
    def report(self) -> dict[str, Any]:
        """The --report-json document."""
        return json.loads(self.report_path.read_text())

    def report_after(self) -> dict[str, Any]:
        """The report the warehouse answers now (after later changes such as an erasure)."""
        from flows.report.reads import read_report
        from flows.warehouse.duckdb_warehouse import DuckDBWarehouse

        return read_report(DuckDBWarehouse(self.data_dir / "warehouse.duckdb")).to_dict()

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Read the run's DuckDB warehouse."""
        with duckdb.connect(str(self.data_dir / "warehouse.duckdb"), read_only=True) as connection:
            return connection.execute(sql, params or []).fetchall()


@pytest.fixture
def run_pipeline(tmp_path: Path) -> Callable[..., FlowRun]:
    """Run the flow in-process against a twin URL; returns the state without raising."""
    from flows.run.pipeline import persons_pipeline

    def run(api_url: str, data_dir: Path | None = None, **params: Any) -> FlowRun:
        folder = data_dir or tmp_path / "data"
        report_path = folder / "report.json"
        params.setdefault("reference_date", REFERENCE_DATE)
        state = persons_pipeline(
            api_url=api_url, data_dir=str(folder), report_json=str(report_path), return_state=True, **params
        )
        return FlowRun(state, folder, report_path)

    return run
