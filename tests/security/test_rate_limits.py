"""Per-key rate limits: 429 with Retry-After, per key, refilled with time, nothing written.

The limits are the `limits` library's moving windows; the in-process storage reads
`time.time()` in `limits.storage.memory`, which these tests replace with a clock they move.
"""

from __future__ import annotations

from collections.abc import Iterator

import limits.storage.memory
import pytest
from sqlalchemy import text

from devtools.servers import Broker
from shared import topics
from shared.apikeys import hash_key
from shared.db import UnitOfWork
from shared.edge.ratelimit import RateLimit, window_item
from tests.integration.stack import Stack, running_stack, wait_until

from .conftest import environment, topic_size


class FakeTime:
    """Stands in for the `time` module inside the memory storage: a wall clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTime]:
    clock = FakeTime()
    monkeypatch.setattr(limits.storage.memory, "time", clock)
    monkeypatch.setattr("shared.edge.ratelimit.time", clock)
    yield clock


def test_window_allows_the_burst_and_averages_the_rate() -> None:
    item = window_item(per_minute=60, burst=3)
    assert (item.amount, item.get_expiry()) == (3, 3)
    assert window_item(per_minute=240, burst=60).get_expiry() == 15
    assert window_item(per_minute=7, burst=1).get_expiry() == 9, "rounded up: never faster"


def test_a_burst_then_refill_with_time(fake_time: FakeTime) -> None:
    limiter = RateLimit(per_minute=60, burst=3, namespace="t")
    assert [limiter.acquire("a") for _ in range(3)] == [None, None, None]
    wait = limiter.acquire("a")
    assert wait is not None and 1.0 <= wait <= 3.0
    assert limiter.acquire("b") is None, "another key has its own budget"
    fake_time.now += 3.5
    assert limiter.acquire("a") is None
    other = RateLimit(per_minute=60, burst=3, namespace="other service")
    assert other.acquire("a") is None, "each service counts on its own"


def test_zero_rate_means_no_limit() -> None:
    limiter = RateLimit(per_minute=0, burst=1, namespace="t")
    assert [limiter.acquire("a") for _ in range(5)] == [None] * 5


def test_an_unreachable_storage_lets_requests_through() -> None:
    # Nothing listens on port 1: the limit must not take the service down with it.
    limiter = RateLimit(per_minute=60, burst=1, namespace="t", storage_uri="redis://127.0.0.1:1/0")
    assert [limiter.acquire("a") for _ in range(3)] == [None, None, None]


@pytest.mark.integration
def test_every_service_answers_429_with_retry_after(
    database_url: str, broker: Broker, fake_time: FakeTime
) -> None:
    limits_env = {"DUBAN_RATE_LIMIT_PER_MINUTE": "6", "DUBAN_RATE_LIMIT_BURST": "3"}
    with environment(limits_env), running_stack(database_url, broker.bootstrap) as stack:
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
        assert 1 <= int(limited.headers["Retry-After"]) <= 30
        assert "频繁" in limited.json()["detail"]
        assert topic_size(broker.bootstrap, topics.PROGRESS_REPORTS) == published
        assert stack.intake.post("/v1/reports", json=body, headers=other).status_code == 202
        fake_time.now += 31  # the window (3 in 30 s) has moved past the burst
        for _ in range(3):
            assert stack.intake.post("/v1/reports", json=body, headers=lead).status_code == 202
        assert stack.intake.post("/v1/reports", json=body, headers=lead).status_code == 429

        # Tracker: per key, across routes.
        reads = [
            stack.tracker.get("/v1/tasks/T2022-001", headers=lead).status_code,
            stack.tracker.get("/v1/tasks", headers=lead).status_code,
            stack.tracker.get("/v1/tasks/T2022-002", headers=lead).status_code,
        ]
        assert reads == [200, 200, 404]
        limited = stack.tracker.get("/v1/tasks/T2022-001/timeline", headers=lead)
        assert limited.status_code == 429, limited.text
        assert 1 <= int(limited.headers["Retry-After"]) <= 30
        assert stack.tracker.get("/v1/tasks/T2022-001", headers=other).status_code == 200
        fake_time.now += 31
        assert stack.tracker.get("/v1/tasks/T2022-001", headers=lead).status_code == 200

        # Notifier: the same, and a limited snooze writes nothing.
        notifier = stack.notifier
        supervisor = {"Authorization": f"Bearer {stack.keys['supervisor']}"}
        wait_for_directory(stack)
        reads = [notifier.get("/v1/notifications", headers=supervisor).status_code for _ in "abc"]
        assert reads == [200, 200, 200]
        limited = notifier.post(
            "/v1/tasks/T2022-001/snoozes",
            json={"until": "2022-06-01T00:00:00+08:00", "reason": "核实中"},
            headers=supervisor,
        )
        assert limited.status_code == 429, limited.text
        assert 1 <= int(limited.headers["Retry-After"]) <= 30
        with UnitOfWork(stack.session_factory) as uow:
            assert uow.session.execute(text("SELECT count(*) FROM notifier.snoozes")).scalar() == 0
        assert notifier.get("/v1/notifications", headers=lead).status_code == 200
        fake_time.now += 31
        assert notifier.get("/v1/notifications", headers=supervisor).status_code == 200


def wait_for_directory(stack: Stack) -> None:
    """Until the notifier's directory knows the stack's keys."""
    directory = stack.notifier.app.state.workers.directory  # type: ignore[attr-defined]
    wait_until(
        lambda: all(directory.key(hash_key(key)) is not None for key in stack.keys.values()),
        timeout=20,
        what="the notifier to learn the keys",
    )
