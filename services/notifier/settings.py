"""Notifier settings (env prefix DUBAN_)."""

from pydantic import SecretStr

from shared.settings import CommonSettings


class NotifierSettings(CommonSettings):
    """Everything the notifier reads from its environment."""

    host: str = "127.0.0.1"
    port: int = 8003
    consumer_group: str = "notifier"
    escalation_interval_seconds: float = 30.0
    dispatch_poll_seconds: float = 0.5
    # Where every notification is also POSTed as JSON, if set (signed with the webhook secret).
    webhook_url: str | None = None
    webhook_secret: SecretStr = SecretStr("")
    supervising_office: str = "市政府办公厅督查室"
