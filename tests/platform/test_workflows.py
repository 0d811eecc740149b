"""The GitHub Actions workflows run for real with act (host mode: no Docker), offline.

Steps that need GitHub's remote actions, AWS or a Prefect API are skipped under act (`if: ${{ !env.ACT }}`);
act still resolves every remote action before a job starts, so each is mapped to a local action that fails
the job if it ever runs: a passing job proves those steps were skipped and everything else ran.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass

import pytest
import yaml

from tests.conftest import BIN, REPO

WORKFLOWS = REPO / ".github" / "workflows"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
USES = re.compile(r"uses:\s*([\w.-]+/[\w.-]+)@([0-9a-f]{40})")
UNFETCHABLE = """\
name: unfetchable
description: stands in for a remote action act cannot fetch offline; fails the job if it ever runs
runs:
  using: composite
  steps:
    - shell: bash
      run: echo "remote action ran under act" >&2; exit 1
"""


@dataclass(frozen=True)
class ActRun:
    """One act invocation: exit code and combined output."""

    returncode: int
    output: str

    def job_lines(self, job_name: str) -> list[str]:
        return [line for line in self.output.splitlines() if f"/{job_name}" in line.split("]")[0]]

    def succeeded(self, job_name: str) -> bool:
        return any("Job succeeded" in line for line in self.job_lines(job_name))


@pytest.fixture(scope="module")
def act(tmp_path_factory: pytest.TempPathFactory):
    """Run a workflow with act against this checkout; the caller's .venv is reused as it is."""
    root = tmp_path_factory.mktemp("act")
    stand_in = root / "unfetchable"
    stand_in.mkdir()
    (stand_in / "action.yml").write_text(UNFETCHABLE)
    files = REPO.glob(".github/**/*.yml")
    remote = sorted({match.groups() for path in files for match in USES.finditer(path.read_text())})
    local = [
        f"--local-repository={name}@{sha}={stand_in}" for name, sha in remote if name != "actions/checkout"
    ]

    def run(workflow: str, ref: str, job: str | None = None, event: str = "push") -> ActRun:
        event_file = root / f"{event}-{ref.replace('/', '-')}.json"
        event_file.write_text(
            json.dumps({"ref": ref, "repository": {"name": "persons-pipeline", "default_branch": "main"}})
        )
        command = [
            str(BIN / "act"),
            event,
            "--workflows", str(WORKFLOWS / workflow),
            "--eventpath", str(event_file),
            "--platform", "ubuntu-latest=-self-hosted",
            "--action-cache-path", str(root / "cache"),
            "--env", f"VENV={REPO / '.venv'}",
            "--no-cache-server",
            *local,
            *(["--job", job] if job else []),
        ]  # fmt: skip
        done = subprocess.run(command, check=False, cwd=REPO, capture_output=True, text=True, timeout=240)
        return ActRun(done.returncode, ANSI.sub("", done.stdout + done.stderr))

    return run


def test_every_remote_action_is_pinned_by_commit_and_skipped_under_act() -> None:
    for path in REPO.glob(".github/**/*.yml"):
        document = yaml.safe_load(path.read_text())
        jobs = document.get("jobs", {}) if isinstance(document, dict) else {}
        steps = [step for job in jobs.values() for step in job.get("steps", [])]
        steps += document.get("runs", {}).get("steps", []) if isinstance(document, dict) else []
        for step in steps:
            uses = step.get("uses", "")
            if not uses or uses.startswith("./"):
                continue
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), f"{path.name}: {uses} is not pinned"
            if not uses.startswith("actions/checkout@"):  # act copies the checkout itself
                assert step.get("if") == "${{ !env.ACT }}", f"{path.name}: {uses} would run under act"


def test_ci_workflow_lint_job_runs_its_make_steps(act) -> None:
    run = act("ci.yml", "refs/heads/main", job="workflows")

    assert run.returncode == 0, run.output[-4000:]
    assert run.succeeded("lint the workflows")
    assert "actionlint" in run.output and "No findings to report" in run.output
    assert "ok -- validation done" in run.output  # the workflow schema


@pytest.mark.parametrize(("branch", "other"), [("dev", "prod"), ("prod", "dev")])
def test_a_push_deploys_its_own_environment_only(act, branch: str, other: str) -> None:
    run = act("deploy.yml", f"refs/heads/{branch}")

    assert run.returncode == 0, run.output[-4000:]
    assert run.succeeded(f"deploy {branch}")
    assert run.job_lines(f"deploy {other}") == []
    assert f"dry run for {branch}: work pool persons-ecs-{branch} (ecs)" in run.output
    assert f"persons-ecs-{other}" not in run.output


def test_a_push_elsewhere_deploys_nothing(act) -> None:
    run = act("deploy.yml", "refs/heads/main")

    assert run.returncode == 0, run.output[-4000:]
    assert run.job_lines("deploy dev") == [] and run.job_lines("deploy prod") == []
