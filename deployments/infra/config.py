"""What differs between the dev and the prod stack, declared once; the task size comes from the job template.

Plain data (no aws_cdk import), so the deploy script and the tests read it without starting the jsii runtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
JOB_TEMPLATE = ROOT / "deployments" / "work-pools" / "ecs.json"
OUT = ROOT / "deployments" / "infra" / "out"
LANDING_PREFIX = "persons"  # the key prefix the pipeline lands under; the task role may touch nothing else

# The pipeline's failure lines (`log_event` names in flows/run/batches.py and Prefect's final-state line): one
# of them is logged whenever a run does not publish every batch or ends Failed/Crashed. `run_finished ...
# problems=N` always follows a batch event, so it needs no term of its own.
FAILURE_EVENTS = ("batch_rejected", "batch_ingest_failed", "batch_not_merged")
FAILURE_LINES = ("Finished in state Failed", "Finished in state Crashed")

# Stack output -> the variable deployments/deploy.py fills the ECS job template and prefect.yaml with.
OUTPUT_VARIABLES = {
    "ClusterName": "PERSONS_ECS_CLUSTER",
    "ExecutionRoleArn": "PERSONS_ECS_EXECUTION_ROLE_ARN",
    "TaskRoleArn": "PERSONS_ECS_TASK_ROLE_ARN",
    "LogGroupName": "PERSONS_ECS_LOG_GROUP",
    "Region": "PERSONS_ECS_REGION",
    "ImageUri": "PERSONS_IMAGE",
    "LandingUrl": "PERSONS_LANDING_URL",
    "HmacSecretName": "PERSONS_HMAC_SECRET_AWS_SECRET",
    "SnowflakePasswordSecretName": "PERSONS_SNOWFLAKE_PASSWORD_AWS_SECRET",
}


@dataclass(frozen=True)
class TaskSize:
    """CPU units and memory (MiB) of one flow run's Fargate task."""

    cpu: int
    memory_mib: int
    family: str
    container_name: str
    stream_prefix: str


def task_size(template: Path = JOB_TEMPLATE) -> TaskSize:
    """The ECS work pool's job template defaults: the one declaration of the task's size and names."""
    variables = json.loads(template.read_text())["variables"]["properties"]
    return TaskSize(
        cpu=int(variables["cpu"]["default"]),
        memory_mib=int(variables["memory"]["default"]),
        family=str(variables["family"]["default"]),
        container_name=str(variables["container_name"]["default"]),
        stream_prefix=str(variables["cloudwatch_logs_prefix"]["default"]),
    )


@dataclass(frozen=True)
class Environment:
    """One AWS account's stack."""

    name: str
    log_retention_days: int
    landing_expiry_days: int
    images_kept: int

    @property
    def stack_name(self) -> str:
        return f"persons-pipeline-{self.name}"

    @property
    def hmac_secret_name(self) -> str:
        return f"persons/{self.name}/hmac-secret"

    @property
    def snowflake_password_secret_name(self) -> str:
        return f"persons/{self.name}/snowflake-password"


# Dev keeps less for less long; prod keeps the landed files (the warehouse's replayable source) for 13 months.
ENVIRONMENTS = {
    "dev": Environment("dev", log_retention_days=30, landing_expiry_days=30, images_kept=30),
    "prod": Environment("prod", log_retention_days=400, landing_expiry_days=400, images_kept=100),
}
