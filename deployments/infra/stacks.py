"""The pipeline's AWS side as one CDK stack per account: landing bucket, image repository, ECS cluster and
Fargate task definition, least-privilege roles, logs and a failure alarm.

No construct here creates a custom resource, a Lambda or an asset, so the templates deploy as they are
(no bootstrap stack): every resource is a plain CloudFormation type.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import (
    Acknowledgment,
    Aws,
    CfnOutput,
    CfnParameter,
    CfnResource,
    Duration,
    Fn,
    RemovalPolicy,
    Stack,
    Tags,
    Validations,
)
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

from deployments.infra.config import (
    FAILURE_EVENTS,
    FAILURE_LINES,
    LANDING_PREFIX,
    OUTPUT_VARIABLES,
    Environment,
    TaskSize,
)

FAILURE_METRIC = "FailureEvents"


def skip_checkov(construct: Construct, check: str, comment: str) -> None:
    """Skip one checkov check on one resource, with the reason (written into the template's Metadata)."""
    resource = construct.node.default_child
    assert isinstance(resource, CfnResource)
    metadata = resource.get_metadata("checkov") or {"skip": []}
    metadata["skip"].append({"id": check, "comment": comment})
    resource.add_metadata("checkov", metadata)


def failure_pattern() -> logs.IFilterPattern:
    """Any line of a failed batch or run (the terms are OR-ed: `?"a" ?"b" ...`)."""
    return logs.FilterPattern.any_term(*(f"event={name}" for name in FAILURE_EVENTS), *FAILURE_LINES)


@dataclass(frozen=True)
class Outputs:
    """The resources whose names and ARNs the stack outputs."""

    cluster: ecs.CfnCluster
    execution_role: iam.Role
    task_role: iam.Role
    log_group: logs.LogGroup
    repository: ecr.Repository
    image_tag: CfnParameter
    landing: s3.Bucket
    task_definition: ecs.FargateTaskDefinition
    alarms: sns.Topic
    alarm: cloudwatch.Alarm


class PersonsPipelineStack(Stack):
    """Everything one environment (dev or prod account) runs the pipeline with."""

    def __init__(self, scope: Construct, environment: Environment, size: TaskSize, **kwargs: object) -> None:
        super().__init__(scope, environment.stack_name, **kwargs)  # type: ignore[arg-type]
        env = environment.name
        Tags.of(self).add("project", "persons-pipeline")
        Tags.of(self).add("environment", env)
        image_tag = CfnParameter(
            self,
            "ImageTag",
            type="String",
            default="bootstrap",
            allowed_pattern=r"^[A-Za-z0-9_.\-]{1,128}$",
            description="Tag of the image in the repository to run (CI passes the commit SHA).",
        )
        access_logs, landing = self._buckets(environment)
        repository = self._repository(environment)
        cluster = self._cluster(env)
        log_group = self._log_group(environment)
        execution_role, task_role = self._roles(environment, landing)
        task_definition = self._task(size, repository, image_tag, log_group, execution_role, task_role)
        alarms, alarm = self._failure_alarm(env, log_group)
        del access_logs  # the landing bucket logs to it
        self._outputs(
            environment,
            Outputs(
                cluster,
                execution_role,
                task_role,
                log_group,
                repository,
                image_tag,
                landing,
                task_definition,
                alarms,
                alarm,
            ),
        )

    def _buckets(self, environment: Environment) -> tuple[s3.Bucket, s3.Bucket]:
        """The landing bucket (encrypted, versioned, TLS only, expiring) and the bucket of its access logs."""
        env = environment.name
        access_logs = s3.Bucket(
            self,
            "AccessLogs",
            bucket_name=f"persons-access-logs-{env}-{Aws.ACCOUNT_ID}",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(environment.log_retention_days),
                    noncurrent_version_expiration=Duration.days(7),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        Validations.of(access_logs).acknowledge(
            Acknowledgment(
                id="AwsSolutions-S1",
                reason="The access-log bucket is the log target itself; logging it would loop.",
            )
        )
        skip_checkov(
            access_logs, "CKV_AWS_18", "The access-log bucket is the log target; logging it would loop."
        )
        landing = s3.Bucket(
            self,
            "Landing",
            bucket_name=f"persons-landing-{env}-{Aws.ACCOUNT_ID}",
            encryption=s3.BucketEncryption.S3_MANAGED,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="landing/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-landed-files",
                    prefix=f"{LANDING_PREFIX}/",
                    expiration=Duration.days(environment.landing_expiry_days),
                    noncurrent_version_expiration=Duration.days(7),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        return access_logs, landing

    def _repository(self, environment: Environment) -> ecr.Repository:
        """The image repository: immutable tags, scanned on push, old images expired."""
        env = environment.name
        repository = ecr.Repository(
            self,
            "Images",
            repository_name=f"persons-pipeline-{env}",
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            image_scan_on_push=True,
            lifecycle_rules=[
                ecr.LifecycleRule(
                    rule_priority=1,
                    description="untagged layers of interrupted pushes",
                    tag_status=ecr.TagStatus.UNTAGGED,
                    max_image_age=Duration.days(7),
                ),
                ecr.LifecycleRule(
                    rule_priority=2,
                    description="keep the most recent images (one per deployed commit)",
                    tag_status=ecr.TagStatus.ANY,
                    max_image_count=environment.images_kept,
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        skip_checkov(
            repository,
            "CKV_AWS_136",
            "Images hold code, no data; ECR encrypts them with AES-256. A customer KMS key would need a key "
            "policy for every account and role that pulls.",
        )
        return repository

    def _cluster(self, env: str) -> ecs.CfnCluster:
        """The ECS cluster the work pool's tasks run in (Fargate and Fargate Spot)."""
        # No VPC here: the network is the account's (the work pool names it); ecs.Cluster would create one.
        cluster = ecs.CfnCluster(
            self,
            "Cluster",
            cluster_name=f"persons-{env}",
            capacity_providers=["FARGATE", "FARGATE_SPOT"],
            cluster_settings=[
                ecs.CfnCluster.ClusterSettingsProperty(name="containerInsights", value="enabled")
            ],
        )
        return cluster

    def _log_group(self, environment: Environment) -> logs.LogGroup:
        """The containers' log group."""
        env = environment.name
        log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/ecs/persons-pipeline-{env}",
            retention=_retention(environment.log_retention_days),
            removal_policy=RemovalPolicy.RETAIN,
        )
        skip_checkov(
            log_group,
            "CKV_AWS_158",
            "The pipeline logs ids, counts and durations, never a person's value (leak-scanned in the "
            "tests); CloudWatch encrypts log data at rest without a customer key.",
        )
        return log_group

    def _roles(self, environment: Environment, landing: s3.Bucket) -> tuple[iam.Role, iam.Role]:
        """The execution role (pull, log) and the task role (the landing prefix and the two secrets)."""
        env = environment.name
        # Created outside the stack (CloudFormation never sees the values); referenced by name.
        hmac_secret = secretsmanager.Secret.from_secret_name_v2(
            self, "HmacSecret", environment.hmac_secret_name
        )
        snowflake_password = secretsmanager.Secret.from_secret_name_v2(
            self, "SnowflakePassword", environment.snowflake_password_secret_name
        )

        execution_role = iam.Role(
            self,
            "ExecutionRole",
            role_name=f"persons-pipeline-execution-{env}",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="Pulls the image and writes the container's logs; nothing else.",
        )
        task_role = iam.Role(
            self,
            "TaskRole",
            role_name=f"persons-pipeline-task-{env}",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="The flow run: its landing prefix and its two secrets.",
        )
        task_role.add_to_policy(
            iam.PolicyStatement(
                sid="ListTheLandingPrefix",
                actions=["s3:ListBucket"],
                resources=[landing.bucket_arn],
                # IfExists: HeadBucket/HeadObject carry no prefix; listing elsewhere in the bucket is refused.
                conditions={"StringLikeIfExists": {"s3:prefix": [LANDING_PREFIX, f"{LANDING_PREFIX}/*"]}},
            )
        )
        task_role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadAndWriteTheLandingPrefix",
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                resources=[landing.arn_for_objects(f"{LANDING_PREFIX}/*")],
            )
        )
        task_role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadTheTwoSecrets",
                actions=["secretsmanager:GetSecretValue"],
                # A name-referenced secret's ARN ends in a random suffix: "-" and six characters.
                resources=[f"{secret.secret_arn}-??????" for secret in (hmac_secret, snowflake_password)],
            )
        )
        landing_id = self.get_logical_id(landing.node.default_child)  # type: ignore[arg-type]
        Validations.of(task_role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{landing_id}.Arn>/{LANDING_PREFIX}/*]",
                reason="Objects under the landing prefix are named per run and batch.",
            )
        )
        return execution_role, task_role

    def _task(
        self,
        size: TaskSize,
        repository: ecr.Repository,
        image_tag: CfnParameter,
        log_group: logs.LogGroup,
        execution_role: iam.Role,
        task_role: iam.Role,
    ) -> ecs.FargateTaskDefinition:
        """The Fargate task definition the ECS work pool's job template runs."""
        task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            family=size.family,
            cpu=size.cpu,
            memory_limit_mib=size.memory_mib,
            execution_role=execution_role,
            task_role=task_role,
        )
        image = ecs.ContainerImage.from_ecr_repository(repository, image_tag.value_as_string)
        task_definition.add_container(
            "Pipeline",
            container_name=size.container_name,
            image=image,
            essential=True,
            logging=ecs.LogDrivers.aws_logs(log_group=log_group, stream_prefix=size.stream_prefix),
        )
        Validations.of(execution_role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="ecr:GetAuthorizationToken has no resource-level permissions (Resource must be *); "
                "pulls are limited to this repository.",
            )
        )
        return task_definition

    def _failure_alarm(self, env: str, log_group: logs.LogGroup) -> tuple[sns.Topic, cloudwatch.Alarm]:
        """A metric of the failure lines in the logs, an alarm on it, and the topic the alarm notifies."""
        alarms = sns.Topic(self, "Alarms", topic_name=f"persons-pipeline-alarms-{env}", enforce_ssl=True)
        Validations.of(alarms).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SNS2",
                reason="CloudWatch alarms cannot publish to a topic under the AWS-managed SNS key; the "
                "messages carry an alarm name and a count, never data.",
            )
        )
        skip_checkov(
            alarms,
            "CKV_AWS_26",
            "Alarm notifications only (an alarm name and a count); CloudWatch cannot publish to a "
            "topic under the AWS-managed SNS key.",
        )
        failures = logs.MetricFilter(
            self,
            "FailureEvents",
            log_group=log_group,
            filter_pattern=failure_pattern(),
            metric_namespace=f"PersonsPipeline/{env}",
            metric_name=FAILURE_METRIC,
            metric_value="1",
            default_value=0,
        )
        alarm = cloudwatch.Alarm(
            self,
            "FailureAlarm",
            alarm_name=f"persons-pipeline-failures-{env}",
            alarm_description="A batch was rejected or not published, or a flow run failed or crashed.",
            metric=failures.metric(statistic="Sum", period=Duration.minutes(5)),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(alarms))
        return alarms, alarm

    def _outputs(self, environment: Environment, out: Outputs) -> None:
        """What `make infra-outputs` writes for `make deploy`, and the names operators look for."""
        outputs = {
            "ClusterName": out.cluster.ref,
            "ExecutionRoleArn": out.execution_role.role_arn,
            "TaskRoleArn": out.task_role.role_arn,
            "LogGroupName": out.log_group.log_group_name,
            "Region": Aws.REGION,
            "ImageUri": Fn.join(":", [out.repository.repository_uri, out.image_tag.value_as_string]),
            "LandingUrl": f"s3://{out.landing.bucket_name}/{LANDING_PREFIX}",
            "HmacSecretName": environment.hmac_secret_name,
            "SnowflakePasswordSecretName": environment.snowflake_password_secret_name,
        }
        assert set(outputs) == set(OUTPUT_VARIABLES)
        for key, value in outputs.items():
            CfnOutput(self, key, value=value, description=f"{OUTPUT_VARIABLES[key]} of make deploy")
        for key, value in {
            "LandingBucketName": out.landing.bucket_name,
            "RepositoryName": out.repository.repository_name,
            "TaskDefinitionArn": out.task_definition.task_definition_arn,
            "AlarmTopicArn": out.alarms.topic_arn,
            "AlarmName": out.alarm.alarm_name,
        }.items():
            CfnOutput(self, key, value=value)


def _retention(days: int) -> logs.RetentionDays:
    """CloudWatch accepts only its listed retention periods."""
    periods = {
        30: logs.RetentionDays.ONE_MONTH,
        90: logs.RetentionDays.THREE_MONTHS,
        365: logs.RetentionDays.ONE_YEAR,
        400: logs.RetentionDays.THIRTEEN_MONTHS,
    }
    if days not in periods:
        raise ValueError(f"{days} days is not a CloudWatch Logs retention period listed here")
    return periods[days]
