"""The dev stack deployed for real into a moto server (CloudFormation), every resource read back through its
own service's API, then a pipeline run whose landing is the bucket the stack created and whose person_key
secret comes from Secrets Manager, as on ECS.

moto 5 skips AWS::S3::BucketPolicy, AWS::CloudWatch::Alarm and AWS::Logs::MetricFilter, and does not apply
bucket versioning, lifecycle and public-access block, ECR's scan-on-push, the cluster's Container Insights,
nor a task definition's CPU and roles: tests/platform/test_infra_stacks.py asserts those on the template.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from faker_twin import FakerTwin, TwinFaults

from deployments.deploy import read_env_file, render_template
from deployments.images import digest_of, mark_passed, passed_digest
from deployments.infra import deploy_stacks
from deployments.infra.config import ENVIRONMENTS, OUTPUT_VARIABLES, task_size
from flows.settings import get_settings
from tests.conftest import REPO, S3Server
from tests.integration.conftest import REFERENCE_DATE, FlowRun
from tests.oracle import expected_from_served

ACCOUNT = "123456789012"  # moto's
ENV = ENVIRONMENTS["dev"]
IMAGE_TAG = "0123abcd" * 5  # a commit SHA


@pytest.fixture
def aws(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Any]:
    """boto3 clients on the moto server; the AWS_* variables point every other client there too."""
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    session = boto3.Session(region_name=s3_server.environment()["AWS_DEFAULT_REGION"])
    return lambda service: session.client(service, endpoint_url=s3_server.endpoint_url)


def test_dev_stack_deploys_into_moto_and_the_pipeline_lands_in_its_bucket(
    aws: Callable[[str], Any],
    infra_out: Path,
    twin: FakerTwin,
    run_pipeline: Callable[..., FlowRun],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # 1. secrets first (outside the stack; CloudFormation never sees a value)
    secrets = aws("secretsmanager")
    key = f"stack-test-key-{uuid.uuid4().hex}"
    for name, value in ((ENV.hmac_secret_name, key), (ENV.snowflake_password_secret_name, "unused-here")):
        try:
            secrets.create_secret(Name=name, SecretString=value)
        except secrets.exceptions.ResourceExistsException:
            secrets.put_secret_value(SecretId=name, SecretString=value)

    # 2. the stack, by the same command as make infra-deploy; twice: the second changes nothing
    outputs_file = tmp_path / "dev.stack.env"
    arguments = ["--env", "dev", "--templates", str(infra_out), "--outputs-file", str(outputs_file)]
    assert deploy_stacks.main([*arguments, "--image-tag", IMAGE_TAG]) == 0
    cloudformation = aws("cloudformation")
    assert deploy_stacks.deploy_stack(
        cloudformation,
        ENV.stack_name,
        (infra_out / "dev" / f"{ENV.stack_name}.template.json").read_text(),
        IMAGE_TAG,
    ) in {"unchanged", "updated"}
    (stack,) = cloudformation.describe_stacks(StackName=ENV.stack_name)["Stacks"]
    assert stack["StackStatus"] in {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
    outputs = read_env_file(outputs_file)
    assert set(outputs) == set(OUTPUT_VARIABLES.values())

    # 3. every resource, read back through its own API
    bucket = f"persons-landing-dev-{ACCOUNT}"
    s3 = aws("s3")
    s3.head_bucket(Bucket=bucket)
    s3.head_bucket(Bucket=f"persons-access-logs-dev-{ACCOUNT}")
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert outputs["PERSONS_LANDING_URL"] == f"s3://{bucket}/persons"

    (repository,) = aws("ecr").describe_repositories(repositoryNames=["persons-pipeline-dev"])["repositories"]
    assert repository["imageTagMutability"] == "IMMUTABLE"
    assert outputs["PERSONS_IMAGE"] == f"{repository['repositoryUri']}:{IMAGE_TAG}"

    ecs = aws("ecs")
    (cluster,) = ecs.describe_clusters(clusters=["persons-dev"], include=["SETTINGS"])["clusters"]
    assert cluster["status"] == "ACTIVE"
    assert outputs["PERSONS_ECS_CLUSTER"] == "persons-dev"
    size = task_size()
    task = ecs.describe_task_definition(taskDefinition=size.family)["taskDefinition"]
    assert task["memory"] == str(size.memory_mib)  # moto keeps family, memory and containers only
    (container,) = task["containerDefinitions"]
    assert container["name"] == size.container_name and container["image"] == outputs["PERSONS_IMAGE"]
    assert container["logConfiguration"]["options"]["awslogs-group"] == outputs["PERSONS_ECS_LOG_GROUP"]

    iam = aws("iam")
    for role in ("persons-pipeline-task-dev", "persons-pipeline-execution-dev"):
        trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        assert trust["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    (policy_name,) = iam.list_role_policies(RoleName="persons-pipeline-task-dev")["PolicyNames"]
    document = iam.get_role_policy(RoleName="persons-pipeline-task-dev", PolicyName=policy_name)[
        "PolicyDocument"
    ]
    document = json.loads(document) if isinstance(document, str) else document
    resources = [statement["Resource"] for statement in document["Statement"]]
    assert resources[:2] == [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/persons/*"]
    assert resources[2] == [
        f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{ENV.hmac_secret_name}-??????",
        f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{ENV.snowflake_password_secret_name}-??????",
    ]

    (log_group,) = aws("logs").describe_log_groups(logGroupNamePrefix="/ecs/persons-pipeline-dev")[
        "logGroups"
    ]
    assert log_group["logGroupName"] == outputs["PERSONS_ECS_LOG_GROUP"]
    assert log_group["retentionInDays"] == ENV.log_retention_days

    # 4. the ECS work pool's job template, as make deploy renders it from the environment file + outputs
    values = read_env_file(REPO / "deployments" / "environments" / "dev.env") | outputs
    job = json.loads(render_template(REPO / "deployments" / "work-pools" / "ecs.json", values))["variables"]
    defaults = {name: spec.get("default") for name, spec in job["properties"].items()}
    assert defaults["cluster"] == "persons-dev" and defaults["image"] == outputs["PERSONS_IMAGE"]
    assert defaults["task_role_arn"] == iam.get_role(RoleName="persons-pipeline-task-dev")["Role"]["Arn"]
    execution_role = iam.get_role(RoleName="persons-pipeline-execution-dev")["Role"]["Arn"]
    assert defaults["execution_role_arn"] == execution_role
    assert defaults["cloudwatch_logs_options"]["awslogs-group"] == log_group["logGroupName"]
    assert defaults["memory"] == int(task["memory"])

    # 5. a pipeline run landing in the stack's bucket, keyed with the secret from Secrets Manager
    monkeypatch.setenv("PERSONS_HMAC_SECRET_AWS_SECRET", outputs["PERSONS_HMAC_SECRET_AWS_SECRET"])
    monkeypatch.setenv("PERSONS_ALLOW_DEMO_SECRET", "false")
    get_settings.cache_clear()
    run = run_pipeline(
        twin.url,
        total=2000,
        page_size=500,
        pages_per_batch=2,
        seed=17,
        landing_url=outputs["PERSONS_LANDING_URL"],
    )
    get_settings.cache_clear()

    assert run.state.is_completed(), run.state.message
    expected = expected_from_served(twin.served(), TwinFaults(), REFERENCE_DATE, key.encode())
    assert run.report["total_persons"] == len(expected.persons)
    assert {row[0] for row in run.query("select person_key from staging.persons")} == set(expected.persons)
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="persons/")
    names = [item["Key"] for item in listing.get("Contents", [])]
    assert sum(name.endswith(".persons.parquet") for name in names) == 2
    assert any(name.endswith("/manifest.json") for name in names)


def test_prod_gets_only_the_digest_dev_passed(aws: Callable[[str], Any]) -> None:
    """The promotion rule on ECR itself: immutable tags, passed-<sha> added after dev's smoke run."""
    ecr = aws("ecr")
    name = f"promotion-{uuid.uuid4().hex[:8]}"
    ecr.create_repository(repositoryName=name, imageTagMutability="IMMUTABLE")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 2,
                "digest": "sha256:" + "1" * 64,
            },
            "layers": [],
        }
    )
    ecr.put_image(repositoryName=name, imageManifest=manifest, imageTag=IMAGE_TAG)
    with pytest.raises(SystemExit, match="has not passed dev"):
        passed_digest(ecr, name, IMAGE_TAG)

    digest = mark_passed(ecr, name, IMAGE_TAG)

    assert digest == digest_of(ecr, name, IMAGE_TAG) == passed_digest(ecr, name, IMAGE_TAG)
    assert mark_passed(ecr, name, IMAGE_TAG) == digest  # idempotent
