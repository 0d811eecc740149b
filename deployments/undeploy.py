"""`make undeploy ENV=local|dev|prod`: remove from the Prefect API in PREFECT_API_URL what `make deploy` made.

Removed: the deployments prefect.yaml declares, in the environment's work pool (their scheduled runs go with
them), the project's automations (deployments/automations/), and the local work pool if `make deploy`
created it and no other deployment uses it. Kept: any other pool, every ECS pool (workers may be attached),
the Secret and Webhook blocks, past flow runs with their logs and artifacts, the warehouse concurrency
limits, and every file (warehouse, landing, reports).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from deployments.alerting import delete_automations  # noqa: E402
from deployments.deploy import api_refusal, deploy_values, wrapped  # noqa: E402
from deployments.prefect_api import (  # noqa: E402
    automation_names,
    delete_deployments,
    delete_pool,
    deployments_in_pool,
    existing_automations,
    pool_made_here,
    project_deployments,
)

KEPT = "kept: Secret and Webhook blocks, past runs and their artifacts, concurrency limits, data files"


def pool_line(pool: str, kind: str) -> str:
    """Delete the pool if make deploy made it and it is the local process pool; what was done."""
    made_here = pool_made_here(pool)
    if made_here is None:
        return f"work pool {pool}: not there"
    if kind != "process":
        return f"work pool {pool} ({kind}): kept (workers may be attached; prefect work-pool delete {pool})"
    if not made_here:
        return f"work pool {pool}: kept (make deploy did not create it)"
    if others := deployments_in_pool(pool):
        return f"work pool {pool}: kept ({others} other deployment(s) use it)"
    delete_pool(pool)
    return f"work pool {pool}: deleted"


def main(argv: list[str] | None = None) -> int:
    """Delete the project's deployments and automations, and the pool if make deploy created it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="local", choices=["local", "dev", "prod"])
    args = parser.parse_args(argv)
    if problem := api_refusal("undeploy"):
        print(problem, file=sys.stderr)
        return 2
    values = deploy_values(args.env, os.environ)
    pool, kind = values["PERSONS_WORK_POOL"], values["PERSONS_WORK_POOL_TYPE"]
    print(f"Undeploying ENV={args.env} from the Prefect API at {os.environ['PREFECT_API_URL']}")
    deployed = project_deployments(pool)
    delete_deployments(deployed)
    print(
        "\n".join(
            wrapped(f"deployments deleted ({len(deployed)})", [item.name for item in deployed] or ["none"])
        )
    )
    automations = existing_automations(automation_names())
    delete_automations(automations)
    print("\n".join(wrapped(f"automations deleted ({len(automations)})", automations or ["none"])))
    print(f"  {pool_line(pool, kind)}")
    print(f"  {KEPT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
