"""The local inbox: the notification stored in Postgres and served by the API is the delivery."""

from __future__ import annotations

from services.notifier.channels.base import DeliveryResult, OutboundMessage


class InboxChannel:
    """Delivers by recording; the dispatcher's commit of the delivered row is the delivery.

    Nothing leaves the process, so it cannot fail and needs no contact: it is what the local
    stack uses when no SMTP relay or robot is configured, and what `GET /v1/notifications`
    shows to each unit.
    """

    def send(self, message: OutboundMessage) -> DeliveryResult:
        """Accept the message; the caller's transaction stores it."""
        if not message.recipient:
            return DeliveryResult(ok=False, attempts=1, error="inbox message without a recipient")
        return DeliveryResult(ok=True, attempts=1)
