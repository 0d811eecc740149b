"""The CDK app: what `make infra` writes, asserted with aws_cdk.assertions on the synthesized templates.

Properties moto does not apply (bucket versioning, lifecycle, public-access block) or skips (bucket policies,
alarms, metric filters) are asserted here; tests/integration/test_infrastructure.py deploys the same files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from deployments.infra.config import ENVIRONMENTS, FAILURE_EVENTS, OUTPUT_VARIABLES, task_size
from tests.conftest import REPO

ALLOWED_TYPES = {
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::ECR::Repository",
    "AWS::ECS::Cluster",
    "AWS::ECS::TaskDefinition",
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::Logs::LogGroup",
    "AWS::Logs::MetricFilter",
    "AWS::CloudWatch::Alarm",
    "AWS::SNS::Topic",
    "AWS::SNS::TopicPolicy",
}


@pytest.fixture(scope="module")
def synthesized(infra_out: Path) -> dict[str, Path]:
    """The template of each environment, as make infra writes it."""
    return {env: infra_out / env / f"{ENVIRONMENTS[env].stack_name}.template.json" for env in ENVIRONMENTS}


@pytest.fixture(scope="module")
def templates(synthesized: dict[str, Path]) -> dict[str, Any]:
    from aws_cdk.assertions import Template

    return {env: Template.from_json(json.loads(path.read_text())) for env, path in synthesized.items()}


def one(template: Any, kind: str) -> dict[str, Any]:
    found = template.find_resources(kind)
    assert len(found) == 1, (kind, list(found))
    return next(iter(found.values()))


def by_id(template: Any, kind: str, prefix: str) -> tuple[str, dict[str, Any]]:
    found = [(key, value) for key, value in template.find_resources(kind).items() if key.startswith(prefix)]
    assert len(found) == 1, (kind, prefix)
    return found[0]


def test_make_infra_writes_one_bootstrap_free_template_per_environment(synthesized: dict[str, Path]) -> None:
    for env, path in synthesized.items():
        assert path.name == f"persons-pipeline-{env}.template.json"
        assert sorted(p.name for p in path.parent.glob("*.template.json")) == [path.name]
        document = json.loads(path.read_text())
        assert "Rules" not in document and set(document.get("Parameters", {})) == {"ImageTag"}
        types = {resource["Type"] for resource in document["Resources"].values()}
        assert types <= ALLOWED_TYPES, types - ALLOWED_TYPES  # no custom resource, Lambda or CDK metadata
        assert not list(path.parent.glob("asset.*"))  # nothing for a bootstrap bucket


def test_landing_bucket_is_encrypted_versioned_private_tls_only_logged_and_expiring(templates) -> None:
    from aws_cdk.assertions import Match

    for env, template in templates.items():
        landing_id, landing = by_id(template, "AWS::S3::Bucket", "Landing")
        logs_id, _ = by_id(template, "AWS::S3::Bucket", "AccessLogs")
        properties = landing["Properties"]
        assert properties["BucketName"] == {
            "Fn::Join": ["", [f"persons-landing-{env}-", {"Ref": "AWS::AccountId"}]]
        }
        encryption = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
        assert properties["PublicAccessBlockConfiguration"] == dict.fromkeys(
            ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"], True
        )
        assert properties["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_id}
        (rule,) = properties["LifecycleConfiguration"]["Rules"]
        assert rule["Prefix"] == "persons/" and rule["Status"] == "Enabled"
        assert rule["ExpirationInDays"] == ENVIRONMENTS[env].landing_expiry_days
        assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
        template.has_resource_properties(
            "AWS::S3::BucketPolicy",
            {
                "Bucket": {"Ref": landing_id},
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "Effect": "Deny",
                                    "Action": "s3:*",
                                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                }
                            )
                        ]
                    )
                },
            },
        )


def test_repository_has_immutable_tags_scan_on_push_and_a_lifecycle(templates) -> None:
    for env, template in templates.items():
        properties = one(template, "AWS::ECR::Repository")["Properties"]
        assert properties["RepositoryName"] == f"persons-pipeline-{env}"
        assert properties["ImageTagMutability"] == "IMMUTABLE"
        assert properties["ImageScanningConfiguration"] == {"ScanOnPush": True}
        rules = json.loads(properties["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
        assert [rule["selection"]["tagStatus"] for rule in rules] == ["untagged", "any"]
        assert rules[1]["selection"]["countNumber"] == ENVIRONMENTS[env].images_kept


def test_cluster_and_task_definition_match_the_ecs_job_template(templates) -> None:
    size = task_size()
    assert (size.cpu, size.memory_mib) == (1024, 2048)  # the benchmark: ~1.5 GiB summed over the processes
    for env, template in templates.items():
        cluster = one(template, "AWS::ECS::Cluster")["Properties"]
        assert cluster["ClusterName"] == f"persons-{env}"
        assert cluster["ClusterSettings"] == [{"Name": "containerInsights", "Value": "enabled"}]
        task = one(template, "AWS::ECS::TaskDefinition")["Properties"]
        assert (task["Cpu"], task["Memory"]) == (str(size.cpu), str(size.memory_mib))
        assert task["Family"] == size.family and task["RequiresCompatibilities"] == ["FARGATE"]
        (container,) = task["ContainerDefinitions"]
        assert container["Name"] == size.container_name
        assert container["Image"]["Fn::Join"][1][-1] == {"Ref": "ImageTag"}
        log_group_id, _ = by_id(template, "AWS::Logs::LogGroup", "Logs")
        assert container["LogConfiguration"]["Options"]["awslogs-group"] == {"Ref": log_group_id}
        assert container["LogConfiguration"]["Options"]["awslogs-stream-prefix"] == size.stream_prefix


def policy_of(template: Any, role_prefix: str) -> list[dict[str, Any]]:
    role_id, _ = by_id(template, "AWS::IAM::Role", role_prefix)
    policies = [
        policy["Properties"]["PolicyDocument"]["Statement"]
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if policy["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    assert len(policies) == 1
    return policies[0]


def test_task_role_reaches_the_landing_prefix_and_the_two_secrets_only(templates) -> None:
    for env, template in templates.items():
        landing_id, _ = by_id(template, "AWS::S3::Bucket", "Landing")
        statements = {statement["Sid"]: statement for statement in policy_of(template, "TaskRole")}
        assert set(statements) == {
            "ListTheLandingPrefix",
            "ReadAndWriteTheLandingPrefix",
            "ReadTheTwoSecrets",
        }
        listing = statements["ListTheLandingPrefix"]
        assert listing["Resource"] == {"Fn::GetAtt": [landing_id, "Arn"]}
        assert listing["Condition"] == {"StringLikeIfExists": {"s3:prefix": ["persons", "persons/*"]}}
        objects = statements["ReadAndWriteTheLandingPrefix"]
        assert sorted(objects["Action"]) == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
        assert objects["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [landing_id, "Arn"]}, "/persons/*"]]}
        secrets = statements["ReadTheTwoSecrets"]
        assert secrets["Action"] == "secretsmanager:GetSecretValue"
        arns = [resource["Fn::Join"][1][-1] for resource in secrets["Resource"]]
        assert arns == [
            f":secret:persons/{env}/hmac-secret-??????",
            f":secret:persons/{env}/snowflake-password-??????",
        ]


def test_execution_role_pulls_this_repository_and_writes_this_log_group_only(templates) -> None:
    for template in templates.values():
        repository_id, _ = by_id(template, "AWS::ECR::Repository", "Images")
        log_group_id, _ = by_id(template, "AWS::Logs::LogGroup", "Logs")
        statements = policy_of(template, "ExecutionRole")
        resources = {json.dumps(statement["Resource"]) for statement in statements}
        assert resources == {
            json.dumps({"Fn::GetAtt": [repository_id, "Arn"]}),
            json.dumps("*"),
            json.dumps({"Fn::GetAtt": [log_group_id, "Arn"]}),
        }
        (wildcard,) = [statement for statement in statements if statement["Resource"] == "*"]
        assert wildcard["Action"] == "ecr:GetAuthorizationToken"  # has no resource-level permission


def test_log_group_retention_and_the_failure_alarm(templates) -> None:
    for env, template in templates.items():
        log_group_id, log_group = by_id(template, "AWS::Logs::LogGroup", "Logs")
        assert log_group["Properties"]["RetentionInDays"] == ENVIRONMENTS[env].log_retention_days
        metric_filter = one(template, "AWS::Logs::MetricFilter")["Properties"]
        assert metric_filter["LogGroupName"] == {"Ref": log_group_id}
        terms = re.findall(r'\?"([^"]+)"', metric_filter["FilterPattern"])
        assert terms == [f"event={name}" for name in FAILURE_EVENTS] + [
            "Finished in state Failed",
            "Finished in state Crashed",
        ]
        (transformation,) = metric_filter["MetricTransformations"]
        alarm = one(template, "AWS::CloudWatch::Alarm")["Properties"]
        assert (alarm["MetricName"], alarm["Namespace"]) == (
            transformation["MetricName"],
            transformation["MetricNamespace"],
        )
        assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
        topic_id, _ = by_id(template, "AWS::SNS::Topic", "Alarms")
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]


def test_the_failure_events_are_the_pipelines_own() -> None:
    source = "\n".join(path.read_text() for path in (REPO / "flows").rglob("*.py"))
    logged = set(re.findall(r'log_event\(\s*logger,\s*"(\w+)"', source))
    assert set(FAILURE_EVENTS) <= logged


def test_outputs_feed_make_deploy(templates) -> None:
    for template in templates.values():
        outputs = template.to_json()["Outputs"]
        assert set(OUTPUT_VARIABLES) <= set(outputs)
        job_template = (REPO / "deployments" / "work-pools" / "ecs.json").read_text()
        prefect_yaml = (REPO / "prefect.yaml").read_text()
        for variable in OUTPUT_VARIABLES.values():  # each output is read where make deploy renders
            assert f"${{{variable}}}" in job_template or f"${variable}" in prefect_yaml, variable
