"""Secrets from AWS Secrets Manager, by name or ARN: the person_key key and the Snowflake password.

A value only ever travels as a `SecretStr`; an error names the setting and AWS's error code, never the value
and never AWS's own message (which may quote the request).
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr


class SecretUnavailable(RuntimeError):
    """A named secret could not be read; the message names the setting, not the value."""


def secrets_manager_client(endpoint_url: str | None = None) -> Any:
    """A boto3 Secrets Manager client on the standard AWS environment (credentials, region, endpoint)."""
    import boto3  # noqa: PLC0415 - only where an AWS secret is named

    return boto3.client("secretsmanager", endpoint_url=endpoint_url)


def aws_secret(
    secret_id: str, setting: str, *, client: Any = None, endpoint_url: str | None = None
) -> SecretStr:
    """The current value of the secret `secret_id` (a name or an ARN), as a SecretStr.

    `setting` is the variable that named the secret, for the error message.
    """
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    client = client or secrets_manager_client(endpoint_url)
    try:
        response = client.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "unknown")
        raise SecretUnavailable(f"{setting}: the AWS secret could not be read ({code})") from None
    except BotoCoreError as exc:
        raise SecretUnavailable(
            f"{setting}: the AWS secret could not be read ({type(exc).__name__})"
        ) from None
    if "SecretString" in response:
        value = str(response["SecretString"])
    else:
        try:
            value = bytes(response["SecretBinary"]).decode()
        except (KeyError, UnicodeDecodeError):
            raise SecretUnavailable(f"{setting}: the AWS secret holds no text") from None
    if not value:
        raise SecretUnavailable(f"{setting}: the AWS secret is empty")
    return SecretStr(value)
