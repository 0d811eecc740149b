"""The privacy boundary as a rule of the code: the raw-data side never imports Prefect (nor what does)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FLOWS = Path(__file__).resolve().parents[2] / "flows"
RAW_MODULES = (FLOWS / "rawdata").glob("*.py")
RAW_SIDE = [
    *sorted(f"flows.rawdata.{path.stem}" for path in RAW_MODULES if path.stem != "__init__"),
    "flows.anonymise.transform",
]

PROBE = """
import json, sys
import {module}
roots = {{'prefect', 'great_expectations', 'flows'}}
print(json.dumps(sorted(name for name in sys.modules if name.split('.')[0] in roots)))
"""


@pytest.mark.parametrize("module", RAW_SIDE)
def test_the_raw_data_side_loads_neither_prefect_nor_great_expectations(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True, check=True
    )
    loaded = json.loads(done.stdout)
    assert not [name for name in loaded if name.startswith(("prefect", "great_expectations"))]
    assert "flows.settings" not in loaded  # it receives its client's configuration, nothing else


def test_the_raw_data_worker_holds_no_database_engine() -> None:
    """The worker keys and lands with the standard library and Arrow: DuckDB (and its ~40 MiB) stays in the
    orchestrator, the one process that writes the warehouse."""
    probe = "import sys, flows.rawdata.worker; print('duckdb' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_the_import_contracts_hold() -> None:
    """The privacy boundary and the run's layers (pyproject.toml), every import counted, also in functions:
    what the allow-list of loaded modules checked before, statically."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-logo", "--no-cache"],
        cwd=FLOWS.parent, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


def test_the_twin_is_not_part_of_the_pipeline_package() -> None:
    assert not list(FLOWS.rglob("*twin*"))
    sources = "\n".join(path.read_text() for path in FLOWS.rglob("*.py"))
    assert "faker_twin" not in sources


def test_the_cli_does_not_import_prefect_before_it_has_chosen_prefects_api() -> None:
    # Prefect reads PREFECT_API_URL when it is first imported; an early import would start a temporary server.
    probe = (
        "import sys\nfrom flows.cli import build_parser\n"
        "build_parser().parse_args(['run', '--total', '5'])\nprint('prefect' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
