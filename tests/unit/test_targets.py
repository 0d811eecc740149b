"""The environment picks warehouse and landing place in one place; Snowflake settings are checked early."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from flows.parameters import resolve_parameters
from flows.settings import PipelineSettings
from flows.targets import resolve_targets
from flows.warehouse.snowflake_warehouse import SnowflakeSettingsError, connection_arguments

SNOWFLAKE = {
    "SNOWFLAKE_ACCOUNT": "acme-x1",
    "SNOWFLAKE_USER": "loader",
    "SNOWFLAKE_PASSWORD": "pw-Zq81",
    "SNOWFLAKE_WAREHOUSE": "LOAD_WH",
}


def targets_for(monkeypatch: pytest.MonkeyPatch, environment: str, **given: object):
    monkeypatch.setenv("PERSONS_ENVIRONMENT", environment)
    settings = PipelineSettings()
    params = resolve_parameters(settings, reference_date=date(2026, 1, 1), data_dir=Path("/tmp/d"), **given)
    return resolve_targets(settings, params)


def test_local_is_duckdb_and_a_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    targets = targets_for(monkeypatch, "local")
    assert (targets.warehouse, targets.landing_url, targets.lands_in_s3) == (
        "duckdb",
        "/tmp/d/landing",
        False,
    )


@pytest.mark.parametrize(
    ("environment", "database", "bucket"),
    [("dev", "PERSONS_DEV", "persons-landing-dev"), ("prod", "PERSONS_PROD", "persons-landing-prod")],
)
def test_dev_and_prod_are_snowflake_and_s3(
    monkeypatch: pytest.MonkeyPatch, environment: str, database: str, bucket: str
) -> None:
    targets = targets_for(monkeypatch, environment)
    assert targets.warehouse == "snowflake"
    assert targets.snowflake_database == database
    assert targets.landing_url == f"s3://{bucket}/persons"


def test_parameters_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    targets = targets_for(monkeypatch, "prod", warehouse="duckdb", landing_url="s3://other-bucket/p")
    assert (targets.warehouse, targets.landing_url) == ("duckdb", "s3://other-bucket/p")


def test_a_bad_bucket_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.parameters import ParameterError

    with pytest.raises(ParameterError, match="--landing-url"):
        targets_for(monkeypatch, "local", landing_url="s3://Not_A_Bucket/x")


def test_snowflake_settings_follow_snowflakes_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SNOWFLAKE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SNOWFLAKE_HOST", "127.0.0.1")
    monkeypatch.setenv("SNOWFLAKE_PORT", "8080")
    monkeypatch.setenv("SNOWFLAKE_PROTOCOL", "http")
    arguments = connection_arguments(PipelineSettings(), "PERSONS_DEV")
    assert arguments["account"] == "acme-x1" and arguments["password"] == "pw-Zq81"
    assert (arguments["host"], arguments["port"], arguments["protocol"]) == ("127.0.0.1", 8080, "http")
    assert arguments["paramstyle"] == "qmark"


@pytest.mark.parametrize(
    "missing", ["SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD", "SNOWFLAKE_WAREHOUSE"]
)
def test_a_missing_setting_is_named_and_no_value_is_shown(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    for name, value in SNOWFLAKE.items():
        if name != missing:
            monkeypatch.setenv(name, value)
    with pytest.raises(SnowflakeSettingsError) as refused:
        connection_arguments(PipelineSettings(), "PERSONS_DEV")
    assert missing in str(refused.value)
    assert "pw-Zq81" not in str(refused.value)


def test_identifiers_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SNOWFLAKE.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SnowflakeSettingsError, match="SNOWFLAKE_DATABASE"):
        connection_arguments(PipelineSettings(), "persons; drop database x")


def test_key_pair_authentication(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "key.p8"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"phrase"),
        )
    )
    for name, value in SNOWFLAKE.items():
        if name != "SNOWFLAKE_PASSWORD":
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY_PATH", str(path))
    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "phrase")
    arguments = connection_arguments(PipelineSettings(), "PERSONS_DEV")
    assert isinstance(arguments["private_key"], bytes) and "password" not in arguments
    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "wrong")
    with pytest.raises(SnowflakeSettingsError, match="SNOWFLAKE_PRIVATE_KEY_PATH"):
        connection_arguments(PipelineSettings(), "PERSONS_DEV")
