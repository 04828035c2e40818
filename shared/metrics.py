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
DIRECTORY_CHECKPOINTS = Counter(
    "duban_directory_checkpoints_total",
    "Directory follower checkpoints: restored, ignored (unsafe to use), unreadable or missing "
    "on start; saved or failed when written.",
    ["outcome"],
)

# The edge and the database pool (every service; `pool` and `service` name the service).
DB_POOL_IN_USE = Gauge(
    "duban_db_pool_in_use", "Database connections checked out of the pool now.", ["pool"]
)
DB_POOL_SIZE = Gauge(
    "duban_db_pool_size",
    "Most connections the pool hands out at once (pool_size + max_overflow).",
    ["pool"],
)
DB_POOL_WAIT = Histogram(
    "duban_db_pool_wait_seconds",
    "Time to get a connection from the pool (queueing for a free one, opening one if needed),"
    " including waits that ended in a pool timeout.",
    ["pool"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)
HTTP_IN_FLIGHT = Gauge(
    "duban_http_requests_in_flight",
    "Requests being served now by this process (ops routes not counted).",
    ["service"],
)
HTTP_SHED = Counter(
    "duban_http_requests_shed_total",
    "Requests answered 503 because the service was saturated, by reason (in_flight: too many"
    " requests in flight; db_pool: no database connection within the pool timeout).",
    ["service", "reason"],
)
CALENDAR_YEAR_KNOWN = Gauge(
    "duban_calendar_year_known",
    "1 when the working calendar knows the year's holidays and makeup days; 0 when it does "
    "not (Monday to Friday are then taken as working days).",
    ["year"],
)
