"""Every metric intake exports (the shared publish metrics come from shared.metrics)."""

from prometheus_client import Counter

from shared.metrics import PUBLISH_FAILURES, PUBLISH_LATENCY

REQUESTS = Counter(
    "duban_intake_http_requests_total", "HTTP requests by route and status.", ["route", "status"]
)
REPORTS_ACCEPTED = Counter(
    "duban_intake_reports_accepted_total", "Reports acknowledged by the broker and answered 202."
)
REPORTS_REJECTED = Counter(
    "duban_intake_reports_rejected_total", "Reports refused, by reason.", ["reason"]
)

__all__ = [
    "PUBLISH_FAILURES",
    "PUBLISH_LATENCY",
    "REPORTS_ACCEPTED",
    "REPORTS_REJECTED",
    "REQUESTS",
]
