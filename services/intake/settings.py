"""Intake settings (env prefix DUBAN_)."""

from shared.settings import CommonSettings


class IntakeSettings(CommonSettings):
    """Everything intake reads from its environment."""

    host: str = "127.0.0.1"
    port: int = 8001
    max_body_bytes: int = 256 * 1024
    publish_timeout_seconds: float = 10.0
    retry_after_seconds: int = 5
