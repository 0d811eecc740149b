"""The console script refuses bad parameters with one line before any work (no request, no Prefect)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from faker_twin import FakerTwin

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


def test_version_completion_and_help_say_what_there_is(capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import build_parser, main

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--version"])
    assert capsys.readouterr().out.startswith("persons-pipeline ")
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert "persons-pipeline" in script and "--page-size" in script and "status" in script
    help_text = build_parser().format_help()
    for command in ("run", "rekey", "forget", "build-models", "status", "history", "serve", "server"):
        assert command in help_text, command
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    run_help, rekey_help = commands["run"].format_help(), commands["rekey"].format_help()
    assert "{duckdb,snowflake}" in run_help and "--log-format" in run_help
    assert "--rekey" in run_help and "--rekey" not in rekey_help  # rekey does not offer itself


def test_status_and_history_render_counts_in_words() -> None:
    from flows.operations.status import RunOutcome, Status, render_status

    runs = [
        RunOutcome("r2", "2026-06-15T06:00:00", "2026-06-15T06:01:00", 3, 2, 1, 0, 200_000, 12),
        RunOutcome("r1", "2026-06-14T06:00:00", "2026-06-14T06:01:00", 2, 2, 0, 0, 200_000, 3),
    ]
    status = Status("/d/warehouse.duckdb", "g-1", "ce50", "2026-06-15", 400_000, 15, "2026-06-15T06:01:00",
                    1.5, 26.0, runs)  # fmt: skip
    shown = render_status(status)
    assert "400,000 persons published (generation g-1, reference date 2026-06-15, key ce50)" in shown
    assert "fresh" in shown and "15 persons held back" in shown
    assert [run.verdict for run in runs] == ["failed", "published"]
    assert "2/3, 1 rejected" in shown
    document = status.to_dict()
    assert document["fresh"] is True and document["runs"][0]["verdict"] == "failed"
