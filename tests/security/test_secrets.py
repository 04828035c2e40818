"""Settings never print the secrets they hold, and read their limits from the environment."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from services.intake.settings import IntakeSettings
from services.notifier.settings import NotifierSettings
from services.tracker.settings import TrackerSettings

REAL_SECRET = "q7V9yJ0c2n5WmR8tLx3Kp6Ds"


def test_secrets_stay_out_of_reprs_and_dumps() -> None:
    settings = NotifierSettings(
        env="production",
        smtp_host="smtp.example.gov.cn",
        smtp_sender="duban@example.gov.cn",
        smtp_username="duban",
        smtp_password=SecretStr(REAL_SECRET),
    )
    assert REAL_SECRET not in repr(settings)
    assert REAL_SECRET not in str(settings)
    assert REAL_SECRET not in settings.model_dump_json()
    smtp = settings.smtp()
    assert smtp is not None and smtp.password == REAL_SECRET


def test_limits_are_configurable_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUBAN_RATE_LIMIT_PER_MINUTE", "0")
    monkeypatch.setenv("DUBAN_MAX_BODY_BYTES", "4096")
    assert IntakeSettings().rate_limit_per_minute == 0
    assert TrackerSettings().max_body_bytes == 4096
    monkeypatch.setenv("DUBAN_RATE_LIMIT_BURST", "0")
    with pytest.raises(ValidationError, match="rate_limit_burst"):
        IntakeSettings()
