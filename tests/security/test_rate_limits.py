"""Per-key rate limits: 429 with Retry-After, per key, refilled with time, nothing written."""

from __future__ import annotations

import pytest

from devtools.servers import Broker
from shared import topics
from shared.httpguard import RateLimiter
from tests.integration.stack import running_stack

from .conftest import environment, topic_size


class FakeMonotonic:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = FakeMonotonic()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [None, None, None]
    wait = limiter.acquire("a")
    assert wait is not None and 0.9 <= wait <= 1.0
    assert limiter.acquire("b") is None, "another key has its own bucket"
    clock.now += 1.0
    assert limiter.acquire("a") is None
    assert limiter.acquire("a") is not None
    clock.now += 3600
    assert [limiter.acquire("a") for _ in range(4)][:3] == [None, None, None], "burst caps refill"


def test_zero_rate_means_no_limit_and_buckets_are_bounded() -> None:
    assert RateLimiter(per_minute=0, burst=1).acquire("a") is None
    clock = FakeMonotonic()
    limiter = RateLimiter(per_minute=60, burst=1, clock=clock, max_keys=10)
    for n in range(10):
        limiter.acquire(f"k{n}")
    clock.now += 5  # every bucket has refilled: they can be forgotten
    limiter.acquire("new")
    assert len(limiter._buckets) == 1


@pytest.mark.integration
def test_both_services_answer_429_with_retry_after(database_url: str, broker: Broker) -> None:
    limits = {"DUBAN_RATE_LIMIT_PER_MINUTE": "6", "DUBAN_RATE_LIMIT_BURST": "3"}
    with environment(limits), running_stack(database_url, broker.bootstrap) as stack:
        lead = {"Authorization": f"Bearer {stack.keys['市发展改革委']}"}
        other = {"Authorization": f"Bearer {stack.keys['市统计局']}"}
        body = {"task_code": "T2022-001", "percent": 10, "summary": "推进中。"}

        # Intake: the burst passes (the third is refused on authorisation, and still
        # counts), the fourth is limited and never published.
        answers = [
            stack.intake.post("/v1/reports", json=body, headers=lead).status_code,
            stack.intake.post("/v1/reports", json=body, headers=lead).status_code,
            stack.intake.post(
                "/v1/reports", json={**body, "task_code": "T2022-002"}, headers=lead
            ).status_code,
        ]
        assert answers == [202, 202, 403]
        published = topic_size(broker.bootstrap, topics.PROGRESS_REPORTS)
        limited = stack.intake.post("/v1/reports", json=body, headers=lead)
        assert limited.status_code == 429, limited.text
        assert 1 <= int(limited.headers["Retry-After"]) <= 10
        assert "频繁" in limited.json()["detail"]
        assert topic_size(broker.bootstrap, topics.PROGRESS_REPORTS) == published
        assert stack.intake.post("/v1/reports", json=body, headers=other).status_code == 202

        clock = FakeMonotonic()
        intake_limiter: RateLimiter = stack.intake.app.state.limiter  # type: ignore[attr-defined]
        intake_limiter.clock = clock
        intake_limiter._buckets.clear()
        for _ in range(3):
            assert stack.intake.post("/v1/reports", json=body, headers=lead).status_code == 202
        assert stack.intake.post("/v1/reports", json=body, headers=lead).status_code == 429
        clock.now += 10
        assert stack.intake.post("/v1/reports", json=body, headers=lead).status_code == 202

        # Tracker: per key, across routes.
        reads = [
            stack.tracker.get("/v1/tasks/T2022-001", headers=lead).status_code,
            stack.tracker.get("/v1/tasks", headers=lead).status_code,
            stack.tracker.get("/v1/tasks/T2022-002", headers=lead).status_code,
        ]
        assert reads == [200, 200, 404]
        limited = stack.tracker.get("/v1/tasks/T2022-001/timeline", headers=lead)
        assert limited.status_code == 429, limited.text
        assert 1 <= int(limited.headers["Retry-After"]) <= 10
        assert stack.tracker.get("/v1/tasks/T2022-001", headers=other).status_code == 200
        tracker_limiter: RateLimiter = stack.tracker.app.state.limiter  # type: ignore[attr-defined]
        tracker_limiter.clock = clock
        tracker_limiter._buckets.clear()
        for _ in range(3):
            stack.tracker.get("/v1/tasks/T2022-001", headers=lead)
        assert stack.tracker.get("/v1/tasks/T2022-001", headers=lead).status_code == 429
        clock.now += 10
        assert stack.tracker.get("/v1/tasks/T2022-001", headers=lead).status_code == 200
