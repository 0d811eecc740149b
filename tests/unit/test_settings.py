"""The settings object: environment overrides, bounds and the demo secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from flows.settings import OFFLINE_DEMO_SECRET, PipelineSettings, variable_of

STRONG = "s3cret-" + "0123456789abcdef" * 2  # 39 bytes


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONS_TOTAL", "1234")
    monkeypatch.setenv("PERSONS_RATE_LIMIT_PER_S", "0")
    monkeypatch.setenv("PERSONS_HMAC_SECRET", STRONG)
    settings = PipelineSettings()
    assert settings.total == 1234
    assert settings.client.rate_limit_per_s == 0
    assert (
        settings.privacy.hmac_secret is not None and settings.privacy.hmac_secret.get_secret_value() == STRONG
    )
    assert STRONG not in repr(settings)


@pytest.mark.parametrize(("name", "value"), [("PERSONS_PAGE_SIZE", "1001"), ("PERSONS_MAX_IN_FLIGHT", "0")])
def test_bounds(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        PipelineSettings()


def test_demo_secret_is_refused_where_not_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERSONS_HMAC_SECRET", raising=False)
    monkeypatch.setenv("PERSONS_ALLOW_DEMO_SECRET", "false")
    settings = PipelineSettings()
    assert settings.privacy.hmac_secret is None
    with pytest.raises(ValueError, match="PERSONS_HMAC_SECRET is not set"):
        settings.check_key_source()
    with pytest.raises(ValueError, match="demo key is not allowed"):
        settings.require_real_secret(SecretStr(OFFLINE_DEMO_SECRET))
    monkeypatch.setenv("PERSONS_HMAC_SECRET", STRONG)
    PipelineSettings().require_real_secret()


def test_demo_secret_only_where_asked_for_and_only_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERSONS_HMAC_SECRET", raising=False)
    monkeypatch.setenv("PERSONS_ALLOW_DEMO_SECRET", "true")
    assert PipelineSettings().person_key_secret().get_secret_value() == OFFLINE_DEMO_SECRET
    monkeypatch.setenv("PERSONS_ENVIRONMENT", "prod")
    with pytest.raises(ValueError, match="never used with PERSONS_ENVIRONMENT=prod"):
        PipelineSettings().check_key_source()


@pytest.mark.parametrize(
    ("value", "said"), [("", "is empty"), ("x", "is 1 byte long"), ("k" * 31, "31 bytes")]
)
def test_an_empty_or_short_key_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str, said: str
) -> None:
    monkeypatch.setenv("PERSONS_HMAC_SECRET", value)  # set, even empty: a failed secret injection
    with pytest.raises(ValidationError) as refused:
        PipelineSettings()
    error = refused.value.errors()[0]
    assert variable_of(error["loc"]) == "PERSONS_HMAC_SECRET" and said in error["msg"]
    assert "input_value" not in str(refused.value)  # the value is never quoted (hide_input_in_errors)


def test_the_cli_refuses_a_weak_key_in_one_line_before_any_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from flows.cli import main
    from flows.settings import get_settings

    monkeypatch.setenv("PERSONS_HMAC_SECRET", "short-key")
    monkeypatch.setenv("PERSONS_PREFECT_SERVER_HOME", str(tmp_path / "server"))
    get_settings.cache_clear()
    try:
        code = main(["run", "--data-dir", str(tmp_path / "data"), "--api-url", "http://127.0.0.1:9/api/v2"])
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("persons-pipeline run: error: PERSONS_HMAC_SECRET:")
    assert "short-key" not in err
    assert not (tmp_path / "server").exists()  # no Prefect server was started for it


def test_the_groups_read_the_same_variables_as_before_and_flat_names_still_reach_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Grouping kept every environment variable: each group's fields are read from PERSONS_<flat name> (or
    Snowflake's own names), an argument by its flat name wins over the environment, empty is unset."""
    from flows.settings import GROUPS, SETTING_PATHS

    monkeypatch.setenv("PERSONS_DUCKDB_THREADS", "3")
    monkeypatch.setenv("persons_lineage_url", "http://127.0.0.1:5000")  # case-insensitive, as before
    monkeypatch.setenv("SNOWFLAKE_ACCOUNT", "xy12345")
    monkeypatch.setenv("PERSONS_MONITOR_FRESHNESS_HOURS", "12")
    monkeypatch.setenv("PERSONS_REQUEST_TIMEOUT_S", "7")
    monkeypatch.setenv("PERSONS_HMAC_SECRET_AWS_SECRET", "")  # a template's unset variable
    settings = PipelineSettings()
    assert (settings.duckdb.threads, settings.lineage.url, settings.snowflake.account) == (
        3,
        "http://127.0.0.1:5000",
        "xy12345",
    )
    assert (settings.monitoring.freshness_hours, settings.client.request_timeout_s) == (12.0, 7.0)
    assert settings.privacy.hmac_secret_aws_secret is None
    overridden = PipelineSettings(duckdb_threads=1, snowflake_account="other")
    assert (overridden.duckdb.threads, overridden.duckdb.memory_limit, overridden.snowflake.account) == (
        1,
        "auto",
        "other",
    )
    # one flat name per field, none shadowing a top-level setting, every variable named back from an error
    assert len(SETTING_PATHS) == sum(len(group.model_fields) for group in GROUPS.values())
    assert not set(SETTING_PATHS) & set(PipelineSettings.model_fields)
    for flat, (attribute, name) in SETTING_PATHS.items():
        variables = GROUPS[attribute].variables(name)
        assert variable_of((attribute, name)) == variables[0]
        assert variables[0] in {f"PERSONS_{flat.upper()}", f"{flat.upper()}"}


def test_the_raw_data_client_receives_its_group_and_nothing_else() -> None:
    """The client's configuration is the client group, by the client's own names."""
    from flows.rawdata.client import ClientConfig

    settings = PipelineSettings(request_timeout_s=3, max_in_flight=2)
    config = ClientConfig(base_url="http://127.0.0.1:1", **settings.client.client_fields())
    assert (config.timeout_s, config.max_in_flight) == (3.0, 2)
    assert set(settings.client.client_fields()) <= set(ClientConfig.__dataclass_fields__)
