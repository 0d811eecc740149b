"""`make infra`: synthesize the dev and prod stacks to CloudFormation JSON under deployments/infra/out/<env>/,
offline, with cdk-nag's AWS Solutions checks; exits 1 if cdk-nag (or CDK) reports an error.

One process synthesizes every environment asked for (the jsii runtime starts once): one CDK app per
environment, each with its own output folder, so out/<env>/ holds exactly that environment's stack.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

# jsii prints a banner per process on Node 20 (this machine's); the CDK itself runs fine on it.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aws_cdk as cdk
from aws_cdk import cx_api
from cdk_nag import AwsSolutionsChecks

from deployments.infra.config import ENVIRONMENTS, OUT, task_size
from deployments.infra.stacks import PersonsPipelineStack

# Feature flags of a current `cdk init` that change what the templates contain.
CONTEXT = {
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    "@aws-cdk/aws-iam:minimizePolicies": True,
    "@aws-cdk/aws-ecs:arnFormatIncludesClusterName": True,
    "@aws-cdk/core:enablePartitionLiterals": True,
    "aws:cdk:enable-path-metadata": False,
    "aws:cdk:version-reporting": False,
}


def build(env: str, outdir: Path) -> tuple[cdk.App, PersonsPipelineStack]:
    """The app of one environment (not yet synthesized)."""
    app = cdk.App(outdir=str(outdir), analytics_reporting=False, context=CONTEXT)
    stack = PersonsPipelineStack(
        app,
        ENVIRONMENTS[env],
        task_size(),
        # No bootstrap stack: the templates have no assets, no bootstrap-version parameter or rule.
        synthesizer=cdk.BootstraplessSynthesizer(),
        description=f"persons-pipeline {env}: landing bucket, image repository, ECS Fargate, logs, alarm",
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


def synth(env: str, out: Path = OUT) -> tuple[Path, list[str]]:
    """Write out/<env>/<stack>.template.json; the error messages of the synthesis (cdk-nag's included)."""
    shutil.rmtree(out / env, ignore_errors=True)  # nothing stale from an earlier synthesis
    app, stack = build(env, out / env)
    try:
        assembly = app.synth()
    except RuntimeError as exc:  # a failed validation (cdk-nag), after it printed its findings
        return out / env / f"{stack.stack_name}.template.json", [str(exc)]
    errors = [
        f"{message.id}: {message.entry.data}"
        for artifact in assembly.stacks
        for message in artifact.messages
        if message.level == cx_api.SynthesisMessageLevel.ERROR
    ]
    return out / env / f"{stack.stack_name}.template.json", errors


def main(argv: Sequence[str] | None = None) -> int:
    """Synthesize the environments asked for (default: all)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", nargs="*", default=sorted(ENVIRONMENTS), choices=sorted(ENVIRONMENTS))
    args = parser.parse_args(argv)
    failed = False
    for env in args.env:
        template, errors = synth(env)
        for error in errors:
            print(f"infra {env}: {error}", file=sys.stderr)
        failed = failed or bool(errors)
        print(f"infra {env}: {template.relative_to(OUT.parents[2])}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
