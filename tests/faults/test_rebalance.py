"""Two tracker replicas in one consumer group; one SIGKILLed under load, the other takes over."""

from __future__ import annotations

import time

import pytest

from tests.faults.books import (
    TRACKER_GROUP,
    report_books,
    task_event_books,
    wait_until_settled,
)
from tests.faults.conftest import StackFactory
from tests.faults.harness import ServiceProcess, wait_until
from tests.faults.load import LoadGenerator, plan_reports

pytestmark = pytest.mark.faults

REPORTS = 2000
RATE = 60.0
APPLIED = "duban_consumer_messages_total"


def applied_by(replica: ServiceProcess) -> float:
    """Reports this replica applied since it started."""
    return replica.metric(APPLIED, topic="intake.progress-reports", outcome="applied")


@pytest.mark.timeout(420)
def test_replica_killed_during_load_its_partitions_move_and_nothing_is_lost(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory()
    seed = stack.seed()
    first = stack.start_tracker("tracker-a")
    second = stack.start_tracker("tracker-b")
    intake = stack.start_intake()
    load = LoadGenerator(
        intake.url,
        seed.keys,
        plan_reports(seed, REPORTS, prefix="rebalance"),
        workers=6,
        rate_per_second=RATE,
    ).start()

    # Both replicas own partitions and are applying reports before one of them dies.
    wait_until(
        lambda: applied_by(first) >= 50 and applied_by(second) >= 50,
        timeout=120,
        what="both replicas applying reports",
    )
    victim, survivor = first, second
    victim_applied = applied_by(victim)
    survivor_before = applied_by(survivor)
    victim.kill()
    killed_at = time.monotonic()
    accepted_at_kill = load.accepted
    # The survivor picks up the dead replica's partitions once its session times out.
    result = load.join()
    settled = wait_until_settled(stack, result, timeout=180)
    survivor_applied = applied_by(survivor)
    books = report_books(stack, result)
    events = task_event_books(stack)
    redelivered = survivor.metric(APPLIED, topic="intake.progress-reports", outcome="duplicate")
    print(
        f"\n[fault] {victim.name} SIGKILLed after applying {victim_applied:.0f} "
        f"({accepted_at_kill} accepted); {survivor.name} had applied {survivor_before:.0f}, "
        f"ends with {survivor_applied:.0f} applied and {redelivered:.0f} redelivered duplicates; "
        f"settled {time.monotonic() - killed_at:.1f}s after the kill ({settled:.1f}s after load)"
    )
    books.show(f"rebalance in group {TRACKER_GROUP}")
    events.show("rebalance")

    # Nothing lost with only the survivor alive: it took over the dead replica's partitions.
    assert survivor.alive
    assert survivor_applied > survivor_before
    books.assert_nothing_lost()
    assert books.dlq == 0
    assert books.processed_events == books.applied
    events.assert_each_change_once()
