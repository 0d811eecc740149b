"""`make deploy ENV=local|dev|prod`: against the Prefect API in PREFECT_API_URL, create the environment's
work pool if it is missing (from deployments/work-pools/), run `prefect deploy --all` without prompts,
then build the dbt models (`persons-pipeline build-models`; skip with --no-build-models).

The environment's values (deployments/environments/<env>.env) become environment variables that
prefect.yaml's {{ $VARIABLES }} read; an empty PERSONS_PROJECT_DIR / PERSONS_DATA_DIR means this checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make the repository importable (deployments.alerting)
    sys.path.insert(0, str(ROOT))
HERE = ROOT / "deployments"


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments and blank lines ignored)."""
    values = {}
    for raw_line in path.read_text().splitlines():
        line = raw_line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def render_template(path: Path, values: dict[str, str]) -> str:
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


def prefect(*arguments: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the Prefect CLI of this interpreter's environment."""
    command = [str(Path(sys.executable).parent / "prefect"), "--no-prompt", *arguments]
    return subprocess.run(  # noqa: S603 - our own CLI, arguments from this script
        command, env=env, cwd=ROOT, text=True, capture_output=not check, check=check
    )


def _automations(values: Mapping[str, str]) -> str:
    """Create or update deployments/automations/*.yaml, calling the alert webhook; what was done."""
    from deployments.alerting import DEFAULT_WEBHOOK_BLOCK, deploy_automations  # noqa: PLC0415
    from flows.settings import get_settings  # noqa: PLC0415 - the thresholds and the webhook URL

    settings = get_settings()
    url = settings.alert_webhook_url.get_secret_value() if settings.alert_webhook_url else None
    block = values.get("PERSONS_AUTOMATION_WEBHOOK_BLOCK") or DEFAULT_WEBHOOK_BLOCK
    names = deploy_automations(url, block, settings.monitor_freshness_hours)
    if not names:
        return f"skipped: set PERSONS_ALERT_WEBHOOK_URL or save a Webhook block named {block}"
    return f"{', '.join(names)} (webhook block {block})"


def main(argv: list[str] | None = None) -> int:
    """Create the pool if missing, then deploy every deployment of prefect.yaml."""
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
    if not args.dry_run and not os.environ.get("PREFECT_API_URL"):
        print("deploy: set PREFECT_API_URL to the Prefect server to deploy to", file=sys.stderr)
        return 2
    values = environment_values(args.env, os.environ)
    values["PERSONS_PROJECT_DIR"] = values.get("PERSONS_PROJECT_DIR") or str(ROOT)
    values["PERSONS_DATA_DIR"] = values.get("PERSONS_DATA_DIR") or str(ROOT / "data")
    env = {**os.environ, **values}
    pool, kind = values["PERSONS_WORK_POOL"], values["PERSONS_WORK_POOL_TYPE"]
    if args.dry_run:  # names and ids only: the environment files never hold a secret's value
        print(f"deploy: dry run for {args.env}: work pool {pool} ({kind}), prefect deploy --all with")
        print("\n".join(f"  {key}={value}" for key, value in sorted(values.items())))
        return 0
    exists = prefect("work-pool", "inspect", pool, env=env, check=False).returncode == 0
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as template:
        template.write(render_template(HERE / "work-pools" / f"{kind}.json", values))
    try:
        json.loads(Path(template.name).read_text())
        if exists:  # the repository's template wins: new stack outputs (image, roles) reach the pool
            prefect("work-pool", "update", pool, "--base-job-template", template.name, env=env)
        else:
            prefect(
                "work-pool", "create", pool, "--type", kind, "--base-job-template", template.name, env=env
            )
    finally:
        Path(template.name).unlink()
    print(f"deploy: {'updated' if exists else 'created'} work pool {pool} ({kind})")
    prefect("deploy", "--all", env=env)
    print(f"deploy: automations: {_automations(values)}")
    if not args.no_build_models:
        # The models are built at deploy time, so the next pipeline run finds them current and skips dbt.
        command = [str(Path(sys.executable).parent / "persons-pipeline"), "build-models"]
        subprocess.run(command, env=env, cwd=ROOT, check=True)  # noqa: S603 - our own CLI
    return 0


if __name__ == "__main__":
    sys.exit(main())
