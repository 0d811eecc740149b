"""`make infra-deploy ENV=dev|prod [IMAGE_TAG=<sha>]`: create or update the environment's stack from its
synthesized template wherever the AWS environment points (credentials, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL),
then write the stack's outputs to deployments/environments/<env>.stack.env, where `make deploy` reads them.

`--outputs-only` just writes the outputs of the deployed stack (e.g. on a laptop after CI deployed it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import boto3
from botocore.exceptions import ClientError

from deployments.infra.config import ENVIRONMENTS, OUT, OUTPUT_VARIABLES, ROOT

WAIT = {"Delay": 3, "MaxAttempts": 600}  # up to 30 minutes; moto answers at once
NO_UPDATES = "No updates are to be performed"


def stack_outputs_file(env: str) -> Path:
    """Where deployments/deploy.py reads the stack's outputs (beside the environment's own file)."""
    return ROOT / "deployments" / "environments" / f"{env}.stack.env"


def stack_status(client: Any, name: str) -> str | None:
    """The stack's status, or None if there is none."""
    try:
        return str(client.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"])
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise


def deploy_stack(client: Any, name: str, template: str, image_tag: str | None) -> str:
    """Create the stack, or update it (no change is fine); returns what was done."""
    status = stack_status(client, name)
    if status == "ROLLBACK_COMPLETE":  # a failed first create leaves a stack that can only be deleted
        client.delete_stack(StackName=name)
        client.get_waiter("stack_delete_complete").wait(StackName=name, WaiterConfig=WAIT)
        status = None
    arguments: dict[str, Any] = {
        "StackName": name,
        "TemplateBody": template,
        "Capabilities": ["CAPABILITY_NAMED_IAM"],
        "Tags": [{"Key": "project", "Value": "persons-pipeline"}],
    }
    if status is None:
        if image_tag:
            arguments["Parameters"] = [{"ParameterKey": "ImageTag", "ParameterValue": image_tag}]
        client.create_stack(**arguments)
        client.get_waiter("stack_create_complete").wait(StackName=name, WaiterConfig=WAIT)
        return "created"
    tag = {"ParameterValue": image_tag} if image_tag else {"UsePreviousValue": True}
    arguments["Parameters"] = [{"ParameterKey": "ImageTag", **tag}]
    try:
        client.update_stack(**arguments)
    except ClientError as exc:
        if NO_UPDATES in str(exc):
            return "unchanged"
        raise
    client.get_waiter("stack_update_complete").wait(StackName=name, WaiterConfig=WAIT)
    return "updated"


def outputs_as_variables(client: Any, name: str) -> dict[str, str]:
    """The stack outputs that make deploy uses, under their variable names."""
    outputs = client.describe_stacks(StackName=name)["Stacks"][0].get("Outputs", [])
    values = {output["OutputKey"]: output["OutputValue"] for output in outputs}
    missing = sorted(set(OUTPUT_VARIABLES) - set(values))
    if missing:
        raise SystemExit(f"infra-deploy: stack {name} has no outputs {', '.join(missing)}")
    return {variable: values[key] for key, variable in OUTPUT_VARIABLES.items()}


def write_env_file(path: Path, stack: str, variables: dict[str, str]) -> None:
    """KEY=VALUE lines, as deployments/deploy.py reads them."""
    lines = [f"# Outputs of stack {stack}, written by make infra-deploy; make deploy reads them."]
    lines += [f"{key}={value}" for key, value in variables.items()]
    path.write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Deploy (unless --outputs-only), then write the outputs for make deploy."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", required=True, choices=sorted(ENVIRONMENTS))
    parser.add_argument("--image-tag", help="image tag to run (default: the deployed one, else 'bootstrap')")
    parser.add_argument("--outputs-only", action="store_true")
    parser.add_argument(
        "--templates", type=Path, default=OUT, help="synthesized templates (default: make infra's)"
    )
    parser.add_argument("--outputs-file", type=Path, help="default: deployments/environments/<env>.stack.env")
    args = parser.parse_args(argv)
    environment = ENVIRONMENTS[args.env]
    client = boto3.client("cloudformation")
    if not args.outputs_only:
        template = args.templates / args.env / f"{environment.stack_name}.template.json"
        if not template.is_file():
            print(f"infra-deploy: {template} is missing; run make infra first", file=sys.stderr)
            return 2
        done = deploy_stack(client, environment.stack_name, template.read_text(), args.image_tag)
        print(f"infra-deploy: stack {environment.stack_name} {done}")
    target = args.outputs_file or stack_outputs_file(args.env)
    write_env_file(target, environment.stack_name, outputs_as_variables(client, environment.stack_name))
    print(f"infra-deploy: outputs written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
