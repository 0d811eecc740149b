"""The image, for real: built with buildah (no Docker engine here), run as its non-root user, its HEALTHCHECK
kept."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest

from tests.conftest import BIN, REPO

MISSING = [tool for tool in ("buildah", "podman", "debootstrap") if shutil.which(tool) is None]


@pytest.mark.skipif(
    bool(MISSING), reason=f"image tooling not installed: {', '.join(MISSING)} (.ci/run installs it)"
)
def test_the_image_builds_and_runs_the_pipeline_as_its_own_user() -> None:
    image = f"localhost/persons-pipeline:test-{uuid.uuid4().hex[:8]}"  # this test's own tag, removed after
    try:
        done = subprocess.run(
            [str(REPO / "scripts" / "image.sh"), "test"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
            env={**os.environ, "TWIN": str(BIN / "faker-twin"), "IMAGE": image},
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-5000:]
        assert "as user 10001:10001" in output
        assert "total persons:                 2000" in output
        assert "report.json total_persons = 2000" in output
        inspected = subprocess.run(
            ["buildah", "inspect", "--type", "image", image], capture_output=True, text=True, check=True
        )
    finally:
        subprocess.run(["buildah", "rmi", image], capture_output=True, check=False)
    # Kept in the image's config (buildah's default OCI format would have dropped it, with only a warning).
    healthcheck = json.loads(inspected.stdout)["Docker"]["config"]["Healthcheck"]
    assert healthcheck["Test"] == ["CMD", "python", "-c", "import flows.run.pipeline"]
    assert (healthcheck["Interval"], healthcheck["Timeout"], healthcheck["Retries"]) == (60e9, 30e9, 2)
