"""The end of a run, its pure parts: the report folder appears whole or not at all; breaches in words."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from flows.monitoring.metrics import Breach
from flows.run.finish import PARTIAL_REPORT_AGE_S, breaches_line, report_folder


def test_a_report_folder_appears_only_once_complete(tmp_path: Path) -> None:
    final = tmp_path / "reports" / "run-1"
    with pytest.raises(RuntimeError), report_folder(final) as folder:
        (folder / "report.md").write_text("half")
        assert not final.exists()
        raise RuntimeError("killed while writing")
    assert not final.exists() and not list(final.parent.iterdir())  # nothing half-written is left
    with report_folder(final) as folder:
        (folder / "report.md").write_text("whole")
    assert (final / "report.md").read_text() == "whole"
    assert [path.name for path in final.parent.iterdir()] == ["run-1"]


def test_a_dead_runs_partial_report_folder_is_removed_by_a_later_run(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    dead, live = reports / ".run-0.partial", reports / ".run-2.partial"
    for folder in (dead, live):
        folder.mkdir(parents=True)
    old = time.time() - PARTIAL_REPORT_AGE_S - 60
    os.utime(dead, (old, old))
    with report_folder(reports / "run-1"):
        pass
    assert not dead.exists() and live.exists()  # a run writing its report right now keeps its folder


def test_breaches_are_told_in_one_line_with_their_thresholds() -> None:
    line = breaches_line(
        [
            Breach("quarantine_rate", "all", 0.142, 0.05),
            Breach("schema_drift_fields", "source", 3.0, 0.0),
        ]
    )
    assert line.endswith(
        "2 breach(es): quarantine_rate of all 14.20% above 5.00%; "
        "schema_drift_fields of source 3 above 0 (PERSONS_MONITOR_*)"
    )
    assert "within every threshold" in breaches_line([])
