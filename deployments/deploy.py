"""`make deploy ENV=local|dev|prod`: against the Prefect API in PREFECT_API_URL, create the environment's
work pool (or update its base job template), run `prefect deploy --all` without prompts, create the
automations, then build the dbt models (`persons-pipeline build-models`; skip with --no-build-models).
It prints what it did in a few lines; the Prefect CLI's own output goes to the log file its last line names.

The environment's values (deployments/environments/<env>.env) become environment variables that
prefect.yaml's {{ $VARIABLES }} read; an empty PERSONS_PROJECT_DIR / PERSONS_DATA_DIR means this checkout,
an empty PERSONS_API_URL the public Faker API.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make the repository importable (deployments.alerting)
    sys.path.insert(0, str(ROOT))
HERE = ROOT / "deployments"

from deployments.prefect_api import Deployed, api_problem, ensure_pool, project_deployments, refusal  # noqa: E402


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments and blank lines ignored)."""
    values = {}
    for raw_line in path.read_text().splitlines():
        line = raw_line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def render_template(path: Path, values: Mapping[str, str]) -> str:
    """A work-pool job template with ${VARIABLES} filled in (unknown ones left visible)."""
    return re.sub(r"\$\{([A-Z0-9_]+)\}", lambda match: values.get(match[1], match[0]), path.read_text())


def environment_values(
    env: str, environ: Mapping[str, str], folder: Path = HERE / "environments"
) -> dict[str, str]:
    """The environment file's values, then the stack's outputs (`make infra-deploy` writes <env>.stack.env),
    unless the caller's environment sets them (CI, tests, one-offs)."""
    values = read_env_file(folder / f"{env}.env")
    stack_outputs = folder / f"{env}.stack.env"
    if stack_outputs.is_file():
        values |= read_env_file(stack_outputs)
    return {key: environ.get(key) or value for key, value in values.items()}


def deploy_values(env: str, environ: Mapping[str, str]) -> dict[str, str]:
    """`environment_values` with the blanks filled in: this checkout, its data folder, the public API."""
    from flows.parameters import DEFAULT_API_URL  # noqa: PLC0415 - the one declaration of the default

    values = environment_values(env, environ)
    values["PERSONS_PROJECT_DIR"] = values.get("PERSONS_PROJECT_DIR") or str(ROOT)
    values["PERSONS_DATA_DIR"] = values.get("PERSONS_DATA_DIR") or str(ROOT / "data")
    values["PERSONS_API_URL"] = values.get("PERSONS_API_URL") or DEFAULT_API_URL
    return values


def deploy_log(env: str, environ: Mapping[str, str]) -> Path:
    """Where the Prefect CLI's and the models build's own output goes: a file per environment, per deploy."""
    folder = Path(environ.get("PERSONS_DATA_DIR") or ROOT / "data") / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"deploy-{env}.log"


class StepFailed(Exception):
    """A deploy step failed: its name, exit code and the last lines of its output (where the cause is)."""

    def __init__(self, step: str, returncode: int, output: str) -> None:
        lines = [line.strip().strip("│").rstrip() for line in output.splitlines()]
        super().__init__(f"{step} failed (exit {returncode}); its last lines:")
        self.tail = [line for line in lines if line.strip(" ─╭╮╰╯")][-8:]  # without the boxes' borders


def run_logged(step: str, command: list[str], env: Mapping[str, str], log: Path) -> str:
    """Run a command with its output appended to the log; that output (StepFailed if the command failed)."""
    start = log.stat().st_size if log.exists() else 0
    with log.open("a") as out:
        out.write(f"\n$ {shlex.join(command)}\n")
        out.flush()
        done = subprocess.run(  # noqa: S603 - our own CLIs, arguments from this script
            command, env=dict(env), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    output = log.read_bytes()[start:].decode(errors="replace")
    if done.returncode != 0:
        raise StepFailed(step, done.returncode, output)
    return output


def _automations(values: Mapping[str, str]) -> str:
    """Create or update deployments/automations/*.yaml, calling the alert webhook; what was done."""
    from deployments.alerting import DEFAULT_WEBHOOK_BLOCK, deploy_automations  # noqa: PLC0415
    from flows.settings import get_settings  # noqa: PLC0415 - the thresholds and the webhook URL

    settings = get_settings()
    url = settings.alerts.webhook_url.get_secret_value() if settings.alerts.webhook_url else None
    block = values.get("PERSONS_AUTOMATION_WEBHOOK_BLOCK") or DEFAULT_WEBHOOK_BLOCK
    names = deploy_automations(url, block, settings.monitoring.freshness_hours)
    if not names:
        return f"skipped: set PERSONS_ALERT_WEBHOOK_URL or save a Webhook block named {block}"
    return f"{', '.join(names)} (webhook block {block})"


def models_summary(output: str) -> str:
    """The models build's outcome in words, from the `models: ...` line `persons-pipeline` prints."""
    found: list[str] = re.findall(r"^models: (.*)$", output, flags=re.MULTILINE)
    if not found:
        return "built"
    try:
        result = ast.literal_eval(found[-1])
    except (ValueError, SyntaxError):
        return found[-1].strip()  # already words
    if not isinstance(result, dict):
        return found[-1].strip()
    if not result.get("built"):
        return "current (unchanged since their last build)"
    docs = f"; docs: {result['docs']}" if result.get("docs") else ""
    return f"built in {float(result.get('seconds') or 0):.1f} s{docs}"


def wrapped(label: str, items: list[str], width: int = 108) -> list[str]:
    """`  label: a, b, c` on as few lines as fit the width, never breaking an item; continuations indented."""
    lines = [f"  {label}: "]
    for number, item in enumerate(items):
        text = item + (", " if number < len(items) - 1 else "")
        if len(lines[-1]) + len(text.rstrip()) > width and lines[-1].strip():
            lines.append("    ")
        lines[-1] += text
    return [line.rstrip() for line in lines]


def deployment_lines(deployed: list[Deployed], before: set[str]) -> list[str]:
    """What was created or updated, and the schedules with how to turn paused ones on."""
    created = [item.name for item in deployed if item.name not in before]
    counts = ", ".join(
        f"{count} {what}"
        for count, what in ((len(created), "created"), (len(deployed) - len(created), "updated"))
        if count
    )
    lines = wrapped(f"deployments ({counts})", [item.name for item in deployed])
    schedules = [(item, schedule) for item in deployed for schedule in item.schedules]
    paused = [(item, schedule) for item, schedule in schedules if not schedule.active]
    active = [f"{item.name} ({schedule.when})" for item, schedule in schedules if schedule.active]
    if active:
        lines += wrapped("schedules on", active)
    if paused:
        lines += wrapped("schedules paused", [f"{item.name} ({schedule.when})" for item, schedule in paused])
        lines.append("    turn one on in the UI (the deployment's Schedules tab) or with:")
        lines += [
            f"    prefect deployment schedule resume {item.name} {schedule.id}" for item, schedule in paused
        ]
    return lines


def next_steps(values: Mapping[str, str]) -> list[str]:
    """How to start a worker and a run for this environment."""
    pool, kind = values["PERSONS_WORK_POOL"], values["PERSONS_WORK_POOL_TYPE"]
    if kind != "process":
        return [
            "Next:",
            f"  prefect worker start --pool {pool} --type {kind}    (where it can reach ECS)",
            "  make smoke                     an adhoc run of 3,000 persons, watched to its end",
        ]
    twin = " and the Faker twin" if twin_address(values["PERSONS_API_URL"]) else ""
    return [
        "Next:",
        f"  make worker                    a process worker on {pool}{twin}",
        "  prefect deployment run persons-pipeline/adhoc --param total=2000",
    ]


def deploy(env: str, values: Mapping[str, str], log: Path, build_models: bool) -> None:
    """Pool, deployments, automations and models, one line each as they are done."""
    pool, kind = values["PERSONS_WORK_POOL"], values["PERSONS_WORK_POOL_TYPE"]
    print(f"Deploying ENV={env} to the Prefect API at {os.environ['PREFECT_API_URL']}", flush=True)
    template = json.loads(render_template(HERE / "work-pools" / f"{kind}.json", values))
    print(f"  work pool {pool} ({kind}): {ensure_pool(pool, kind, template)}", flush=True)
    before = {item.name for item in project_deployments(pool)}
    prefect = str(Path(sys.executable).parent / "prefect")
    run_logged(
        "prefect deploy --all", [prefect, "--no-prompt", "deploy", "--all"], {**os.environ, **values}, log
    )
    print("\n".join(deployment_lines(project_deployments(pool), before)), flush=True)
    source = "the Faker twin" if twin_address(values["PERSONS_API_URL"]) else "the Faker API"
    print(f"  runs fetch persons from {source} at {values['PERSONS_API_URL']}", flush=True)
    print(f"  automations: {_automations(values)}", flush=True)
    if build_models:
        # The models are built at deploy time, so the next pipeline run finds them current and skips dbt.
        print("  models: building them if they changed ...", flush=True)
        command = [str(Path(sys.executable).parent / "persons-pipeline"), "build-models"]
        output = run_logged("the models build", command, {**os.environ, **values}, log)
        print(f"  models: {models_summary(output)}", flush=True)
    print("\n".join(next_steps(values)))


def main(argv: list[str] | None = None) -> int:
    """Create or update the pool, deploy every deployment of prefect.yaml, report in a few lines."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="local", choices=["local", "dev", "prod"])
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the pool and the values prefect.yaml would get; no API call",
    )
    parser.add_argument(
        "--no-build-models", action="store_true", help="skip the dbt build that follows the deployment"
    )
    args = parser.parse_args(argv)
    values = deploy_values(args.env, os.environ)
    if args.dry_run:  # names and ids only: the environment files never hold a secret's value
        pool, kind = values["PERSONS_WORK_POOL"], values["PERSONS_WORK_POOL_TYPE"]
        print(f"deploy: dry run for {args.env}: work pool {pool} ({kind}), prefect deploy --all with")
        print("\n".join(f"  {key}={value}" for key, value in sorted(values.items())))
        return 0
    problem = api_refusal("deploy")
    if problem:
        print(problem, file=sys.stderr)
        return 2
    log = deploy_log(args.env, os.environ)
    log.write_text(f"make deploy ENV={args.env}: the output of the Prefect CLI and of the models build\n")
    from prefect.exceptions import PrefectHTTPStatusError  # noqa: PLC0415

    try:
        deploy(args.env, values, log, build_models=not args.no_build_models)
    except StepFailed as failed:
        print(f"deploy: {failed}", file=sys.stderr)
        print("\n".join(f"  {line}" for line in failed.tail), file=sys.stderr)
        print(f"Prefect's output: {log}", file=sys.stderr)
        return 1
    except PrefectHTTPStatusError as error:  # e.g. a pool of that name but another type
        print(f"deploy: the Prefect API refused: {refusal(error)}", file=sys.stderr)
        return 1
    print(f"Prefect's output: {log}")
    return 0


def api_refusal(command: str) -> str | None:
    """One line when PREFECT_API_URL is unset or its API does not answer; None when it answers."""
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        return f"{command}: set PREFECT_API_URL to the Prefect server's API (e.g. http://127.0.0.1:4200/api)"
    if problem := api_problem():
        return f"{command}: no Prefect API answers at {url} ({problem}); start one or fix PREFECT_API_URL"
    return None


def twin_address(api_url: str) -> tuple[str, int] | None:
    """(host, port) when the API URL is on this machine (the Faker twin's place), else None."""
    parts = urlsplit(api_url)
    if parts.hostname not in {"127.0.0.1", "localhost"}:
        return None
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


if __name__ == "__main__":
    sys.exit(main())
