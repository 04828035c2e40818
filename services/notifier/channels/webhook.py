"""Generic signed JSON webhook."""

from __future__ import annotations

import hashlib
import hmac

from services.notifier.channels._http import HttpChannel, json_body
from services.notifier.channels.base import OutboundMessage, PermanentDeliveryError

SIGNATURE_HEADER = "X-Duban-Signature"
TIMESTAMP_HEADER = "X-Duban-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign_body(secret: str, body: bytes) -> str:
    """The signature header value: `sha256=` and the hex HMAC-SHA256 of the body."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, body: bytes, header_value: str) -> bool:
    """Check a signature header in constant time (for receivers and tests)."""
    return hmac.compare_digest(sign_body(secret, body), header_value)


class WebhookChannel(HttpChannel):
    """POSTs `message.payload` as JSON to `message.address`, signed with `message.secret`."""

    def attempt(self, message: OutboundMessage) -> int:
        """One signed POST; raises a DeliveryError on failure."""
        if not message.secret:
            raise PermanentDeliveryError("webhook secret missing; refusing to send unsigned")
        body = json_body(message.payload)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            SIGNATURE_HEADER: sign_body(message.secret, body),
            # The receiver drops a second delivery of the same notification (retries, replays).
            IDEMPOTENCY_HEADER: message.notification_id,
            TIMESTAMP_HEADER: str(int(self._clock())),
        }
        return self._poster.post(message.address, body, headers).status_code
