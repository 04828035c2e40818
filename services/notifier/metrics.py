"""Every metric the notifier exports (the shared consumer metrics come from shared.metrics)."""

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics import CONSUMER_LAG, CONSUMER_MESSAGES

REQUESTS = Counter(
    "duban_notifier_http_requests_total", "HTTP requests by route and status.", ["route", "status"]
)
NOTIFICATIONS_PLANNED = Counter(
    "duban_notifier_notifications_planned_total",
    "Notifications planned (one per task, level, recipient, channel and window), by level.",
    ["level"],
)
DELIVERIES = Counter(
    "duban_notifier_deliveries_total",
    "Digest deliveries by channel and final outcome (delivered, or failed after every retry).",
    ["channel", "outcome"],
)
DELIVERY_RETRIES = Counter(
    "duban_notifier_delivery_retries_total",
    "Delivery attempts beyond the first, by channel.",
    ["channel"],
)
MISSING_CONTACTS = Counter(
    "duban_notifier_missing_contacts_total",
    "Deliveries that failed because the recipient has no contact for the channel.",
    ["channel", "role"],
)
PENDING = Gauge("duban_notifier_pending_notifications", "Notifications not yet delivered.")
RECIPIENT_GAPS = Counter(
    "duban_notifier_recipient_gaps_total",
    "Levels due for a role the task names nobody in (counted once per task, level, window).",
    ["level", "role"],
)
TICKS = Counter(
    "duban_notifier_escalation_ticks_total", "Escalation ticks by outcome.", ["outcome"]
)
TICK_SECONDS = Histogram(
    "duban_notifier_escalation_tick_seconds",
    "Time one escalation tick took (load, plan, write).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LAST_TICK = Gauge(
    "duban_notifier_escalation_last_success_timestamp_seconds",
    "When the last escalation tick committed (Unix time).",
)
CONFIG_RELOADS = Counter(
    "duban_notifier_config_reloads_total",
    "Policy and contacts file reloads by file and outcome (applied, rejected).",
    ["file", "outcome"],
)

__all__ = [
    "CONFIG_RELOADS",
    "CONSUMER_LAG",
    "CONSUMER_MESSAGES",
    "DELIVERIES",
    "DELIVERY_RETRIES",
    "LAST_TICK",
    "MISSING_CONTACTS",
    "NOTIFICATIONS_PLANNED",
    "PENDING",
    "RECIPIENT_GAPS",
    "REQUESTS",
    "TICKS",
    "TICK_SECONDS",
]
