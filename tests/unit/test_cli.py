"""The console script refuses bad parameters with one line before any work (no request, no Prefect)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from faker_twin.server import FakerTwin

SCRIPT = Path(sys.executable).parent / "persons-pipeline"


@pytest.fixture(scope="module")
def twin() -> Iterator[FakerTwin]:
    with FakerTwin() as server:
        yield server


@pytest.mark.parametrize(
    "arguments",
    [
        ["--page-size", "5000"],
        ["--page-size", "0"],
        ["--total", "0"],
        ["--total", "many"],
        ["--locale", "english"],
        ["--birthday-start", "2000-01-01", "--birthday-end", "1990-01-01"],
        ["--reference-date", "2026-13-01"],
        ["--warehouse", "oracle"],
        ["--api-url", "ftp://example.org"],
        ["--seed", "-3"],
        ["--no-such-option"],
    ],
)
def test_bad_parameters_are_refused_before_any_work(
    twin: FakerTwin, tmp_path: Path, arguments: list[str]
) -> None:
    data_dir = tmp_path / "data"
    command = [str(SCRIPT), "run", "--api-url", twin.url, "--data-dir", str(data_dir), *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "error" in done.stderr
    assert twin.stats()["persons_requests"] == 0
    assert not data_dir.exists()


def test_bad_settings_are_refused_in_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PERSONS_MAX_IN_FLIGHT": "0"}
    done = subprocess.run(
        [str(SCRIPT), "run"], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("persons-pipeline run: error: PERSONS_MAX_IN_FLIGHT")
    assert len(done.stderr.strip().splitlines()) == 1


def test_help_lists_every_flow_parameter() -> None:
    done = subprocess.run(
        [str(SCRIPT), "run", "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    for option in (
        "--api-url",
        "--total",
        "--page-size",
        "--seed",
        "--locale",
        "--birthday-start",
        "--birthday-end",
        "--reference-date",
        "--data-dir",
        "--warehouse",
        "--report-json",
    ):
        assert option in done.stdout
