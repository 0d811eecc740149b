"""The image, for real: built with buildah (no Docker engine here) and run as its non-root user."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import BIN, REPO

MISSING = [tool for tool in ("buildah", "podman", "debootstrap") if shutil.which(tool) is None]


@pytest.mark.skipif(
    bool(MISSING), reason=f"image tooling not installed: {', '.join(MISSING)} (.ci/run installs it)"
)
def test_the_image_builds_and_runs_the_pipeline_as_its_own_user() -> None:
    done = subprocess.run(
        [str(REPO / "scripts" / "image.sh"), "test"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
        env={**os.environ, "TWIN": str(BIN / "faker-twin")},
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert "as user 10001:10001" in output
    assert "total persons:                 2000" in output
    assert "report.json total_persons = 2000" in output
