"""Every metric the notifier exports (the shared consumer metrics come from shared.metrics)."""

from prometheus_client import Counter, Gauge

from shared.metrics import CONSUMER_LAG, CONSUMER_MESSAGES

REQUESTS = Counter(
    "duban_notifier_http_requests_total", "HTTP requests by route and status.", ["route", "status"]
)
NOTIFICATIONS_PLANNED = Counter(
    "duban_notifier_notifications_planned_total", "Notifications planned, by level.", ["level"]
)
DELIVERIES = Counter(
    "duban_notifier_deliveries_total", "Delivery outcomes by channel.", ["channel", "outcome"]
)
DELIVERY_RETRIES = Counter(
    "duban_notifier_delivery_retries_total",
    "Delivery attempts beyond the first, by channel.",
    ["channel"],
)
PENDING = Gauge("duban_notifier_pending_notifications", "Notifications not yet delivered.")

__all__ = [
    "CONSUMER_LAG",
    "CONSUMER_MESSAGES",
    "DELIVERIES",
    "DELIVERY_RETRIES",
    "NOTIFICATIONS_PLANNED",
    "PENDING",
    "REQUESTS",
]
