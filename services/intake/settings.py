"""Intake settings (env prefix DUBAN_)."""

from pydantic import Field

from shared.settings import CommonSettings


class IntakeSettings(CommonSettings):
    """Everything intake reads from its environment."""

    host: str = "127.0.0.1"
    port: int = 8001
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    publish_timeout_seconds: float = 10.0
    retry_after_seconds: int = 5
    # An agency files a handful of reports a day; this stops a runaway script, not a person.
    rate_limit_per_minute: float = Field(default=60.0, ge=0)
    rate_limit_burst: int = Field(default=20, ge=1)
