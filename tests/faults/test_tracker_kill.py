"""The tracker SIGKILLed twice in the middle of a stream of 3000 reports, then restarted."""

from __future__ import annotations

import time

import pytest

from tests.faults.books import (
    TRACKER_GROUP,
    report_books,
    task_event_books,
    wait_applied,
    wait_until_settled,
)
from tests.faults.conftest import StackFactory
from tests.faults.load import LoadGenerator, plan_reports

pytestmark = pytest.mark.faults

REPORTS = 3000
# Paced a little faster than the tracker applies them, so the stream is still flowing at
# each kill and a backlog builds on the topic.
RATE = 60.0


@pytest.mark.timeout(420)
def test_tracker_killed_mid_stream_applies_every_accepted_report_once(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory()
    seed = stack.seed()
    tracker = stack.start_tracker()
    intake = stack.start_intake()
    load = LoadGenerator(
        intake.url,
        seed.keys,
        plan_reports(seed, REPORTS, prefix="kill"),
        workers=6,
        rate_per_second=RATE,
    ).start()

    kills = []
    for fraction in (0.25, 0.6):
        # Kill while the tracker is busy: reports applied, more waiting on the topic.
        applied = wait_applied(stack, int(REPORTS * fraction))
        tracker.kill()
        kills.append(f"SIGKILL with {load.accepted} accepted, {applied} applied")
        # Intake keeps answering 202 while the tracker is down.
        down_from = load.accepted
        time.sleep(3)
        assert load.accepted > down_from or load.accepted == REPORTS, "intake stalled"
        tracker.start()
        tracker.wait_ready()

    result = load.join()
    settled = wait_until_settled(stack, result, timeout=180)
    redelivered = tracker.metric(
        "duban_consumer_messages_total", topic="intake.progress-reports", outcome="duplicate"
    )
    books = report_books(stack, result)
    events = task_event_books(stack)
    print(f"\n[fault] {'; '.join(kills)}; load took {result.elapsed:.1f}s, settled {settled:.1f}s")
    print(f"[fault] redelivered after the last restart, skipped as duplicates: {redelivered:.0f}")
    books.show(f"tracker SIGKILL ({TRACKER_GROUP} restarted twice)")
    events.show("tracker SIGKILL")

    books.assert_nothing_lost()
    assert books.dlq == 0
    assert books.processed_events == books.applied
    events.assert_each_change_once()
