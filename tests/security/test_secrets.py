"""Settings refuse default secrets outside development, and never print them."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from services.intake.settings import IntakeSettings
from services.tracker.settings import TrackerSettings
from shared.settings import DEVELOPMENT_SECRET, CommonSettings

REAL_SECRET = "q7V9yJ0c2n5WmR8tLx3Kp6Ds"


@pytest.mark.parametrize("settings", [CommonSettings, IntakeSettings, TrackerSettings])
def test_production_refuses_default_short_and_placeholder_secrets(
    settings: type[CommonSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DUBAN_SECRET_KEY", raising=False)
    with pytest.raises(ValidationError, match="DUBAN_SECRET_KEY"):
        settings(env="production")
    for weak in (DEVELOPMENT_SECRET, "short", "changeme", "CHANGE-ME"):
        with pytest.raises(ValidationError, match="DUBAN_SECRET_KEY"):
            settings(env="production", secret_key=SecretStr(weak))
    assert settings(env="production", secret_key=SecretStr(REAL_SECRET)).env == "production"
    assert settings(env="development").secret_key.get_secret_value() == DEVELOPMENT_SECRET


def test_secrets_stay_out_of_reprs_and_dumps() -> None:
    settings = TrackerSettings(env="production", secret_key=SecretStr(REAL_SECRET))
    assert REAL_SECRET not in repr(settings)
    assert REAL_SECRET not in str(settings)
    assert REAL_SECRET not in settings.model_dump_json()


def test_limits_are_configurable_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUBAN_RATE_LIMIT_PER_MINUTE", "0")
    monkeypatch.setenv("DUBAN_MAX_BODY_BYTES", "4096")
    assert IntakeSettings().rate_limit_per_minute == 0
    assert TrackerSettings().max_body_bytes == 4096
    monkeypatch.setenv("DUBAN_RATE_LIMIT_BURST", "0")
    with pytest.raises(ValidationError, match="rate_limit_burst"):
        IntakeSettings()
