"""The tracker's database stopped for a while in the middle of a stream, then started again."""

from __future__ import annotations

import time

import pytest

from devtools.servers import LocalPostgres
from tests.faults.books import report_books, task_event_books, wait_applied, wait_until_settled
from tests.faults.conftest import StackFactory
from tests.faults.load import LoadGenerator, plan_reports

pytestmark = pytest.mark.faults

REPORTS = 1500
OUTAGE_SECONDS = 10.0
# Paced so that agencies are still reporting while the database is away.
RATE = 40.0


@pytest.mark.timeout(360)
def test_database_outage_mid_stream_loses_nothing(
    stack_factory: StackFactory, postgres: LocalPostgres
) -> None:
    stack = stack_factory()
    seed = stack.seed()
    tracker = stack.start_tracker()
    intake = stack.start_intake()
    load = LoadGenerator(
        intake.url,
        seed.keys,
        plan_reports(seed, REPORTS, prefix="pgdown"),
        workers=6,
        rate_per_second=RATE,
    ).start()

    applied_before = wait_applied(stack, REPORTS // 5)
    postgres.stop()
    stopped_at = time.monotonic()
    accepted_at_stop = load.accepted
    readiness_while_down = None
    try:
        while time.monotonic() - stopped_at < OUTAGE_SECONDS:
            time.sleep(1.0)
            state = tracker.readiness()
            if state is not None and state[0] != 200:
                readiness_while_down = state
        accepted_while_down = load.accepted - accepted_at_stop
    finally:
        postgres.start()

    result = load.join()
    settled = wait_until_settled(stack, result, timeout=180)
    books = report_books(stack, result)
    events = task_event_books(stack)
    print(
        f"\n[fault] Postgres stopped for {OUTAGE_SECONDS:.0f}s after {applied_before} applied; "
        f"intake accepted {accepted_while_down} meanwhile; tracker readiness while down: "
        f"{readiness_while_down}; load took {result.elapsed:.1f}s, settled {settled:.1f}s; "
        f"tracker alive: {tracker.alive}"
    )
    books.show("database outage")
    events.show("database outage")

    # Intake has no database: agencies keep reporting through the outage.
    assert accepted_while_down > 0
    # The tracker said it was not ready while its database was away, and survived it.
    assert readiness_while_down is not None
    status, body = readiness_while_down
    assert status == 503, body
    assert str(body.get("checks", {}).get("database", "")).startswith("error"), body
    assert tracker.alive
    books.assert_nothing_lost()
    assert books.dlq == 0, "a transient database error sent reports to the DLQ"
    assert books.processed_events == books.applied
    events.assert_each_change_once()
