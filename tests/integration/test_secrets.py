"""Secrets from AWS Secrets Manager (flows/secrets.py) against a moto server: by name and by ARN, for
the person_key key and the Snowflake password; errors name the setting, never a value."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

from flows.secrets import SecretUnavailable, aws_secret
from flows.settings import PipelineSettings
from flows.warehouse.snowflake_warehouse import SnowflakeWarehouse
from tests.conftest import S3Server, free_port


@pytest.fixture
def secrets(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A Secrets Manager client on moto; the AWS_* variables point the code under test there too."""
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    return boto3.client("secretsmanager", endpoint_url=s3_server.endpoint_url, region_name="us-east-1")


def stored(client: Any, value: str) -> tuple[str, str]:
    """A new secret holding `value`: (name, ARN)."""
    name = f"persons/test/{uuid.uuid4().hex[:12]}"
    created = client.create_secret(Name=name, SecretString=value)
    return name, created["ARN"]


def test_person_key_secret_by_name_or_arn(secrets: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    value = f"key-{uuid.uuid4().hex}"
    name, arn = stored(secrets, value)
    for secret_id in (name, arn):
        monkeypatch.setenv("PERSONS_HMAC_SECRET_AWS_SECRET", secret_id)
        settings = PipelineSettings(allow_demo_secret=False)

        secret = settings.person_key_secret()

        assert secret.get_secret_value() == value
        settings.require_real_secret(secret)
        assert value not in repr(secret) and value not in str(secret)


def test_snowflake_password_from_secrets_manager(secrets: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    value = f"pw-{uuid.uuid4().hex}"
    name, _ = stored(secrets, value)
    for variable, setting in {
        "SNOWFLAKE_ACCOUNT": "acct",
        "SNOWFLAKE_USER": "loader",
        "SNOWFLAKE_WAREHOUSE": "LOAD_WH",
        "PERSONS_SNOWFLAKE_PASSWORD_AWS_SECRET": name,
    }.items():
        monkeypatch.setenv(variable, setting)

    warehouse = SnowflakeWarehouse.from_settings(PipelineSettings(), "PERSONS_DEV")  # no connection yet

    assert warehouse._arguments["password"] == value


def test_errors_name_the_setting_and_aws_code_only(secrets: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    value = f"never-shown-{uuid.uuid4().hex}"
    name, _ = stored(secrets, value)
    secrets.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)

    with pytest.raises(SecretUnavailable) as missing:
        aws_secret(name, "PERSONS_HMAC_SECRET_AWS_SECRET")
    assert str(missing.value) == (
        "PERSONS_HMAC_SECRET_AWS_SECRET: the AWS secret could not be read (ResourceNotFoundException)"
    )
    assert missing.value.__cause__ is None and missing.value.__suppress_context__

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(
        SecretUnavailable, match=r"^PERSONS_SNOWFLAKE_PASSWORD_AWS_SECRET: .*\(EndpointConnectionError\)$"
    ):
        aws_secret(
            name, "PERSONS_SNOWFLAKE_PASSWORD_AWS_SECRET", endpoint_url=f"http://127.0.0.1:{free_port()}"
        )

    empty = secrets.create_secret(Name=f"persons/test/{uuid.uuid4().hex[:12]}", SecretBinary=b"\xff\xfe")
    with pytest.raises(SecretUnavailable, match="holds no text"):
        aws_secret(empty["ARN"], "PERSONS_HMAC_SECRET_AWS_SECRET")


def test_one_source_per_secret() -> None:
    with pytest.raises(ValueError, match="PERSONS_HMAC_SECRET_BLOCK or PERSONS_HMAC_SECRET_AWS_SECRET"):
        PipelineSettings(hmac_secret_block="block", hmac_secret_aws_secret="persons/dev/hmac-secret")
    with pytest.raises(
        ValueError, match="PERSONS_SNOWFLAKE_PASSWORD_BLOCK or PERSONS_SNOWFLAKE_PASSWORD_AWS"
    ):
        PipelineSettings(snowflake_password_block="b", snowflake_password_aws_secret="persons/dev/pw")
    assert PipelineSettings(hmac_secret_aws_secret="").privacy.hmac_secret_aws_secret is None  # empty = unset
