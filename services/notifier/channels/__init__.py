"""Delivery channels: webhook, SMTP e-mail, WeCom and DingTalk group robots."""

from services.notifier.channels.base import (
    Channel,
    DeliveryError,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from services.notifier.channels.retry import RetryPolicy, send_with_retries

__all__ = [
    "Channel",
    "DeliveryError",
    "DeliveryResult",
    "OutboundMessage",
    "PermanentDeliveryError",
    "RetryPolicy",
    "TransientDeliveryError",
    "send_with_retries",
]
