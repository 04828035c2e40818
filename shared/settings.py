"""Settings shared by every service; each service extends `CommonSettings` with its own."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.clock import OffsetClock

Environment = Literal["development", "test", "production"]


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
    # Per API key and service: at most `burst` requests in any burst/rate seconds (so
    # `per_minute` on average); 0 turns the limit off. Counted in this process
    # (`memory://`, each replica on its own) or in Redis shared by every replica
    # (DUBAN_RATE_LIMIT_STORAGE=redis://host:6379/0).
    rate_limit_per_minute: float = Field(default=240.0, ge=0)
    rate_limit_burst: int = Field(default=60, ge=1)
    rate_limit_storage: str = Field(
        default="memory://", pattern=r"^(memory|redis|rediss|redis\+unix)://"
    )
    # Largest request body; document uploads have their own, larger limit.
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    # Longest a request's database statement may run before it is cancelled (503).
    request_statement_timeout_ms: int = Field(default=15_000, ge=100)
    # Where a directory follower keeps its checkpoint (the state it read and the offsets it
    # read it up to), so a restart reads only what came after. Unset: no checkpoint, every
    # start reads the directory topic from the beginning (docs/guarantees.md).
    directory_cache_dir: Path | None = None
    # Once caught up, the checkpoint is rewritten at most this often when something changed.
    directory_checkpoint_seconds: float = Field(default=60.0, gt=0)
    # Load shedding (docs/operations.md, "过载保护"). Requests in flight per process beyond
    # which a new request is answered 503 with Retry-After at once (ops routes exempt). Keep
    # it below AnyIO's 40 worker threads, which the synchronous routes run on.
    max_requests_in_flight: int = Field(default=32, ge=1)
    shed_retry_after_seconds: int = Field(default=1, ge=1)
    # The request pool: connections kept open, extra ones opened under load, and how long a
    # request waits for one before it is answered 503 (well under a client's patience).
    db_pool_size: int = Field(default=5, ge=1)
    db_max_overflow: int = Field(default=5, ge=0)
    db_pool_timeout_seconds: float = Field(default=2.0, gt=0)
    # The background workers' own pool (consumer, outbox relay and its lock, scans,
    # dispatcher): request load cannot starve them, nor they the requests.
    db_workers_pool_size: int = Field(default=4, ge=1)
    db_workers_max_overflow: int = Field(default=2, ge=0)
    # Readiness is checked in the background on a connection of its own, this often; /readyz
    # answers the last result (and fails once no check finished for a few intervals).
    readiness_interval_seconds: float = Field(default=1.0, gt=0)
    readiness_timeout_seconds: float = Field(default=2.0, gt=0)
    # Longest the broker holds a fetch open waiting for more data: a report is handled at
    # once instead of waiting for a batch to fill.
    consumer_fetch_max_wait_ms: int = Field(default=50, ge=0, le=10_000)

    # Holidays and makeup working days (调休) for years `chinesecalendar` does not know yet,
    # or corrections to it (DUBAN_CALENDAR_OVERRIDES, shared/workcal.py). Unset: the package.
    calendar_overrides: Path | None = None

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
