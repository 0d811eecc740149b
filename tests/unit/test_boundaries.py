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
def test_the_raw_data_side_imports_neither_prefect_nor_the_rest_of_the_pipeline(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True, check=True
    )
    loaded = json.loads(done.stdout)
    assert not [name for name in loaded if name.startswith(("prefect", "great_expectations"))]
    allowed = ("flows.rawdata", "flows.anonymise", "flows.runtime.remote", "flows.plan", "flows.parameters")
    allowed += ("flows.windows", "flows.sql_files", "flows.landing.files")
    allowed += ("flows.runtime.environment",)  # a leaf: the allow-list of a child's environment
    packages = {"flows.landing", "flows.runtime"}  # their __init__ modules are empty
    strays = [
        name
        for name in loaded
        if name.startswith("flows.") and not name.startswith(allowed) and name not in packages
    ]
    assert not strays, f"{module} pulls in {strays}"


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
