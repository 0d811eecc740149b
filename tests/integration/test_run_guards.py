"""What a run refuses or guards against before and while it works: another page size for published pages, a
damaged warehouse file, files other users could read; and what it tells: its quality breaches."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from faker_twin import FakerTwin, TwinFaults

from flows.cli import main
from tests.integration.conftest import REFERENCE_DATE, FlowRun

SMALL = {"page_size": 500, "pages_per_batch": 4, "seed": 71}


def cli(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The console script in this process (the session's Prefect server): exit code, stdout, stderr."""
    code = main(arguments)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_arguments(twin: FakerTwin, data_dir: Path, **given: object) -> list[str]:
    values = {**SMALL, "total": 3000, **given}
    options = [f"--{name.replace('_', '-')}={value}" for name, value in values.items()]
    return [
        "run",
        "--api-url",
        twin.url,
        "--data-dir",
        str(data_dir),
        "--reference-date",
        str(REFERENCE_DATE),
        *options,
    ]


def test_another_page_size_for_published_pages_is_refused_before_any_fetch(
    twin: FakerTwin, run_pipeline: Callable[..., FlowRun], capsys: pytest.CaptureFixture[str]
) -> None:
    first = run_pipeline(twin.url, total=3000, **SMALL)
    assert first.state.is_completed(), first.state.message
    served = twin.stats()["persons_requests"]
    capsys.readouterr()

    code, _, err = cli(run_arguments(twin, first.data_dir, page_size=250), capsys)

    assert code == 2
    assert err.count("\n") == 1 and err.startswith("persons-pipeline run: error: --page-size 250: ")
    assert "fetched 500 per page" in err and "--page-size 500" in err
    # A deployment's run (no CLI in front of it) refuses the same way, inside the flow, before any request.
    flow = run_pipeline(twin.url, data_dir=first.data_dir, total=3000, **{**SMALL, "page_size": 1000})
    assert flow.state.is_failed() and "--page-size 1000: " in str(flow.state.message)
    assert twin.stats()["persons_requests"] == served
    assert first.query("select count(*) from staging.persons") == [(3000,)]
    grown = run_pipeline(twin.url, data_dir=first.data_dir, total=4000, **SMALL)  # same page size: fine
    assert grown.state.is_completed(), grown.state.message
    assert twin.stats()["persons_requests"] == served + 2


def test_the_run_files_are_private_and_a_damaged_warehouse_is_named_with_advice(
    twin: FakerTwin, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    code, _, err = cli(run_arguments(twin, data_dir), capsys)
    assert code == 0, err[-3000:]
    warehouse = data_dir / "warehouse.duckdb"
    private = [
        warehouse,
        *data_dir.joinpath("landing").rglob("*.parquet"),
        *data_dir.joinpath("reports").rglob("*"),
    ]
    assert len(private) > 5
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path  # the owner's alone
    # A damaged file: named, with what to do, in one line, before anything starts (exit 2, no traceback).
    size = warehouse.stat().st_size
    with warehouse.open("r+b") as handle:
        handle.truncate(4096 if size > 4096 else size // 2)
    code, _, err = cli(run_arguments(twin, data_dir), capsys)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"the warehouse {warehouse} cannot be read" in err and "Restore it from a backup" in err


def test_quality_breaches_are_printed_in_the_runs_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakerTwin(faults=TwinFaults(extra_fields=True)) as drifting:  # fields the policy does not know
        code, out, err = cli(run_arguments(drifting, tmp_path / "data", total=1000), capsys)
    assert code == 0, err[-3000:]
    [line] = [line for line in out.splitlines() if line.startswith("quality:")]
    assert "breach(es): schema_drift_fields of source" in line and "above 0" in line
    assert "(PERSONS_MONITOR_*)" in line
