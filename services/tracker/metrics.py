"""Every metric the tracker exports (the shared consumer metrics come from shared.metrics)."""

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics import CONSUMER_LAG, CONSUMER_MESSAGES

REQUESTS = Counter(
    "duban_tracker_http_requests_total", "HTTP requests by route and status.", ["route", "status"]
)
REPORTS_APPLIED = Counter(
    "duban_tracker_reports_applied_total", "Progress reports applied to task state.", ["role"]
)
SCAN_DURATION = Histogram(
    "duban_tracker_scan_duration_seconds", "Duration of one overdue/at-risk scan tick."
)
SCAN_TASKS = Counter("duban_tracker_scan_tasks_evaluated_total", "Tasks re-evaluated by the scan.")
SCAN_LAST_SUCCESS = Gauge(
    "duban_tracker_scan_last_success_timestamp_seconds", "When the scan last completed."
)
LIGHT_CHANGES = Counter(
    "duban_tracker_light_changes_total", "Light changes emitted, by new light.", ["light"]
)
OUTBOX_PUBLISHED = Counter(
    "duban_tracker_outbox_published_total", "Outbox events published to the broker."
)
OUTBOX_BACKLOG = Gauge("duban_tracker_outbox_backlog", "Outbox events not yet published.")
TASKS_BY_LIGHT = Gauge("duban_tasks", "Tasks by light and lead unit.", ["light", "unit"])
OVERDUE_BY_LEADER = Gauge(
    "duban_tasks_overdue_by_leader", "Red tasks per supervising leader.", ["leader"]
)
# Declared for the Supervision dashboard; to be set beside TASKS_BY_LIGHT in
# workers.refresh_business_gauges (a task with several leaders counts once for each).
TASKS_BY_SECTION = Gauge(
    "duban_tasks_by_section", "Tasks by light and section (主要任务).", ["light", "section"]
)
TASKS_BY_LEADER = Gauge(
    "duban_tasks_by_leader", "Tasks by light and supervising leader.", ["light", "leader"]
)
POLICY_RELOADS = Counter(
    "duban_tracker_policy_reloads_total",
    "Supervision policy file reloads by outcome (applied, rejected).",
    ["outcome"],
)

__all__ = [
    "CONSUMER_LAG",
    "CONSUMER_MESSAGES",
    "LIGHT_CHANGES",
    "OUTBOX_BACKLOG",
    "OUTBOX_PUBLISHED",
    "OVERDUE_BY_LEADER",
    "POLICY_RELOADS",
    "REPORTS_APPLIED",
    "REQUESTS",
    "SCAN_DURATION",
    "SCAN_LAST_SUCCESS",
    "SCAN_TASKS",
    "TASKS_BY_LEADER",
    "TASKS_BY_LIGHT",
    "TASKS_BY_SECTION",
]
