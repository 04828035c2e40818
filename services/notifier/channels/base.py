"""What every delivery channel takes and returns, and how failures are classified."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class OutboundMessage:
    """A rendered message ready for one channel.

    `address` is the channel's destination (an e-mail address or a URL) and `secret` its
    signing secret, both taken from the contact book by the caller, so one channel object
    can serve every recipient.
    """

    notification_id: str
    recipient: str
    subject: str
    text: str
    markdown: str
    html: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    address: str = ""
    secret: str | None = None


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of delivering one message, after any retries."""

    ok: bool
    attempts: int
    status_code: int | None = None
    error: str | None = None
    # True when the last failure was transient: trying again later may well succeed.
    retryable: bool = False


class Channel(Protocol):
    """Delivers a message, retrying transient failures; never raises for delivery failures."""

    def send(self, message: OutboundMessage) -> DeliveryResult:
        """Deliver `message` and say what happened."""
        ...


class DeliveryError(Exception):
    """One attempt failed."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class TransientDeliveryError(DeliveryError):
    """An attempt failed in a way that may succeed later: timeouts, 5xx, dropped connections."""


class PermanentDeliveryError(DeliveryError):
    """An attempt failed in a way that retrying cannot fix: 4xx, a refused address, bad config."""


def classify_http_status(status_code: int, body_excerpt: str) -> None:
    """Raise the right DeliveryError for a non-2xx HTTP status; return for 2xx."""
    if 200 <= status_code < 300:
        return
    detail = f"HTTP {status_code}: {body_excerpt[:200]}"
    # 408 and 429 are the 4xx codes that mean "later", not "never".
    if status_code >= 500 or status_code in (408, 429):
        raise TransientDeliveryError(detail, status_code)
    raise PermanentDeliveryError(detail, status_code)
