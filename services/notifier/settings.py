"""Notifier settings (env prefix DUBAN_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from services.notifier.channels.email import SmtpSettings
from services.notifier.channels.retry import RetryPolicy
from services.notifier.escalation.policy import DEFAULT_POLICY_PATH, LOCAL_POLICY_PATH
from shared.settings import CommonSettings


class NotifierSettings(CommonSettings):
    """Everything the notifier reads from its environment."""

    host: str = "127.0.0.1"
    port: int = 8003
    consumer_group: str = "notifier"

    # The escalation policy (DUBAN_POLICY_PATH). Unset: the shipped default policy in
    # production, and the same ladder on the local inbox everywhere else.
    policy_path: Path | None = None
    # Where recipients are reached (DUBAN_CONTACTS_PATH); unset: no e-mail, webhook or robot
    # contacts, so those channels fail visibly and only the inbox delivers.
    contacts_path: Path | None = None
    # How often the policy and contacts files are checked for changes.
    config_reload_seconds: float = Field(default=5.0, gt=0)
    # Overrides the policy's supervising_office (the name the office's notices go to).
    supervising_office: str | None = Field(default=None, min_length=1, max_length=200)
    # A link to the system put into messages, if set.
    system_url: str | None = None

    escalation_interval_seconds: float = Field(default=30.0, gt=0)
    # Run a tick after each task event that changed a condition, this long after the first
    # of a burst, so the tasks a scan flags together go out as one digest.
    escalate_on_event: bool = True
    escalation_debounce_seconds: float = Field(default=1.0, ge=0)

    # False: this replica plans and serves the API but sends nothing (another replica does).
    dispatcher_enabled: bool = True
    dispatch_poll_seconds: float = Field(default=0.5, gt=0)
    dispatch_batch_size: int = Field(default=500, ge=1, le=10_000)
    # Attempts within one delivery round (with exponential backoff and jitter) …
    delivery_attempts: int = Field(default=4, ge=1, le=20)
    delivery_initial_wait_seconds: float = Field(default=1.0, ge=0)
    delivery_max_wait_seconds: float = Field(default=30.0, ge=0)
    delivery_jitter_seconds: float = Field(default=1.0, ge=0)
    # … then further rounds for transient failures (receiver down), the n-th after
    # redelivery_backoff_seconds * 2**(n-1), before the delivery is recorded as failed.
    delivery_rounds: int = Field(default=6, ge=1, le=50)
    redelivery_backoff_seconds: float = Field(default=60.0, ge=0)
    http_timeout_seconds: float = Field(default=10.0, gt=0)
    # A digest taken for sending is leased to its sender for this long; no transaction and
    # no row lock is held while it is sent. A sender that dies leaves the lease behind, and
    # once it runs out another dispatcher sends the digest again under the same id. It must
    # outlast one whole round (attempts × channel timeout plus the waits between attempts),
    # or a slow send would be taken over while still running.
    delivery_lease_seconds: float = Field(default=300.0, gt=0)

    # SMTP relay for the e-mail channel; unset host: e-mail notices fail as "not configured".
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_sender: str | None = None
    smtp_sender_name: str = "督办系统"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _consistent_smtp(self) -> NotifierSettings:
        if self.smtp_host and not self.smtp_sender:
            raise ValueError("DUBAN_SMTP_SENDER is required when DUBAN_SMTP_HOST is set")
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("DUBAN_SMTP_USERNAME and DUBAN_SMTP_PASSWORD go together")
        if self.smtp_starttls and self.smtp_ssl:
            raise ValueError("choose DUBAN_SMTP_STARTTLS or DUBAN_SMTP_SSL, not both")
        longest = self.longest_round_seconds()
        if self.delivery_lease_seconds <= longest:
            raise ValueError(
                f"DUBAN_DELIVERY_LEASE_SECONDS ({self.delivery_lease_seconds:g}) must be longer "
                f"than one delivery round can take ({longest:g}s: DUBAN_DELIVERY_ATTEMPTS × "
                "the channel timeout plus the waits between attempts)"
            )
        return self

    def longest_round_seconds(self) -> float:
        """The longest one delivery round can take: every attempt timing out, longest waits."""
        timeout = self.http_timeout_seconds
        if self.smtp_host:
            timeout = max(timeout, self.smtp_timeout_seconds)
        return self.delivery_attempts * timeout + self.retry_policy().longest_waits()

    @property
    def effective_policy_path(self) -> Path:
        """The policy file in force: the configured one, else the default for the environment."""
        if self.policy_path is not None:
            return self.policy_path
        return DEFAULT_POLICY_PATH if self.env == "production" else LOCAL_POLICY_PATH

    def smtp(self) -> SmtpSettings | None:
        """The SMTP relay settings, or None when e-mail is not configured."""
        if not self.smtp_host or not self.smtp_sender:
            return None
        return SmtpSettings(
            host=self.smtp_host,
            port=self.smtp_port,
            sender=self.smtp_sender,
            sender_name=self.smtp_sender_name,
            username=self.smtp_username,
            password=self.smtp_password.get_secret_value() if self.smtp_password else None,
            starttls=self.smtp_starttls,
            use_ssl=self.smtp_ssl,
            timeout=self.smtp_timeout_seconds,
        )

    def retry_policy(self) -> RetryPolicy:
        """Retries within one delivery round."""
        return RetryPolicy(
            max_attempts=self.delivery_attempts,
            initial_wait=self.delivery_initial_wait_seconds,
            max_wait=self.delivery_max_wait_seconds,
            jitter=self.delivery_jitter_seconds,
        )
