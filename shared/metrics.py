"""Metrics recorded by the shared Kafka plumbing; each service declares its own beside these."""

from prometheus_client import Counter, Gauge, Histogram

CONSUMER_MESSAGES = Counter(
    "duban_consumer_messages_total",
    "Messages handled by a consumer, by outcome (applied, duplicate, dlq, retried).",
    ["topic", "outcome"],
)
CONSUMER_RUNNING = Gauge(
    "duban_consumer_running",
    "1 while a consumer loop runs (connected or reconnecting); 0 once it halted or died.",
    ["topic"],
)
CONSUMER_LAG = Gauge(
    "duban_consumer_lag_messages",
    "Messages not yet consumed, per topic partition (end offset minus position).",
    ["topic", "partition"],
)
PUBLISH_LATENCY = Histogram(
    "duban_publish_latency_seconds",
    "Time from send to broker acknowledgement (acks=all).",
    ["topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PUBLISH_FAILURES = Counter(
    "duban_publish_failures_total", "Publishes the broker did not acknowledge.", ["topic"]
)
CALENDAR_YEAR_KNOWN = Gauge(
    "duban_calendar_year_known",
    "1 when the working calendar knows the year's holidays and makeup days; 0 when it does "
    "not (Monday to Friday are then taken as working days).",
    ["year"],
)
