"""The settings object: environment overrides, bounds and the demo secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flows.settings import OFFLINE_DEMO_SECRET, PipelineSettings


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONS_TOTAL", "1234")
    monkeypatch.setenv("PERSONS_RATE_LIMIT_PER_S", "0")
    monkeypatch.setenv("PERSONS_HMAC_SECRET", "s3cret")
    settings = PipelineSettings()
    assert settings.total == 1234
    assert settings.rate_limit_per_s == 0
    assert settings.hmac_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(("name", "value"), [("PERSONS_PAGE_SIZE", "1001"), ("PERSONS_MAX_IN_FLIGHT", "0")])
def test_bounds(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        PipelineSettings()


def test_demo_secret_is_refused_where_not_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONS_ALLOW_DEMO_SECRET", "false")
    settings = PipelineSettings()
    assert settings.hmac_secret.get_secret_value() == OFFLINE_DEMO_SECRET
    with pytest.raises(ValueError, match="PERSONS_HMAC_SECRET"):
        settings.require_real_secret()
    monkeypatch.setenv("PERSONS_HMAC_SECRET", "a-real-one")
    PipelineSettings().require_real_secret()
