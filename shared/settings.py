"""Settings shared by every service; each service extends `CommonSettings` with its own."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.clock import OffsetClock

Environment = Literal["development", "test", "production"]

# Secrets that ship in the repo for local use; production refuses to start with them.
DEVELOPMENT_SECRET = "duban-development-secret-change-me"  # noqa: S105


class CommonSettings(BaseSettings):
    """Connection settings every service needs."""

    model_config = SettingsConfigDict(
        env_prefix="DUBAN_", extra="ignore", frozen=True, populate_by_name=True
    )

    env: Environment = "development"
    database_url: str = Field(
        default="postgresql+psycopg://postgres@127.0.0.1:5432/duban",
        validation_alias=AliasChoices("DATABASE_URL", "DUBAN_DATABASE_URL"),
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "DUBAN_KAFKA_BOOTSTRAP_SERVERS"),
    )
    topic_partitions: int = 3
    topic_replication_factor: int = 1
    # Short group timeouts keep rebalances quick on the local broker; production raises them.
    consumer_session_timeout_ms: int = 10_000
    consumer_heartbeat_interval_ms: int = 1_000
    # Consecutive DLQ'd messages after which a consumer stops instead of draining the topic.
    poison_streak_limit: int = 50
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    # Shifts the service clock (seconds, may be negative) so a past document year can be demoed.
    clock_offset_seconds: float = 0.0
    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET)

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> CommonSettings:
        if self.env == "production" and self.secret_key.get_secret_value() == DEVELOPMENT_SECRET:
            raise ValueError("DUBAN_SECRET_KEY must be set to a real secret in production")
        return self

    def clock(self) -> OffsetClock:
        """The service clock: wall time shifted by `clock_offset_seconds`."""
        return OffsetClock(dt.timedelta(seconds=self.clock_offset_seconds))

    @property
    def sqlalchemy_url(self) -> str:
        """Database URL with the psycopg 3 driver named, whatever the operator wrote."""
        url = self.database_url
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url
