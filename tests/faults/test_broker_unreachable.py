"""The broker unreachable: intake answers 503 with Retry-After, clients retry with the same
Idempotency-Key once it is back, and each report lands once.

The local broker keeps messages in memory only, so it is made unreachable without losing
them: SIGSTOP freezes the Tansu process (connections stay open and hang, as with a network
partition or a stuck broker) and SIGCONT brings it back with everything it had.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from devtools.servers import Broker
from tests.faults.books import report_books, status_summary, task_event_books, wait_until_settled
from tests.faults.conftest import StackFactory
from tests.faults.load import LoadGenerator, plan_reports

pytestmark = pytest.mark.faults

REPORTS = 600
PAUSE_SECONDS = 15.0
# Intake waits at most its publish timeout (10 s) for the broker's acknowledgement.
INTAKE_PATIENCE_SECONDS = 12.0


@pytest.mark.timeout(300)
def test_broker_unreachable_answers_503_and_retries_land_once(
    stack_factory: StackFactory, broker: Broker
) -> None:
    stack = stack_factory()
    seed = stack.seed()
    stack.start_tracker()
    intake = stack.start_intake()
    load = LoadGenerator(
        intake.url,
        seed.keys,
        plan_reports(seed, REPORTS, prefix="pause"),
        workers=6,
        deadline_seconds=120,
    ).start()

    load.wait_accepted(REPORTS // 4)
    accepted_at_pause = load.accepted
    os.kill(broker.process.pid, signal.SIGSTOP)
    try:
        time.sleep(PAUSE_SECONDS)
        during = dict(load.result.statuses)
        accepted_during = load.accepted - accepted_at_pause
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
    resumed_at = time.monotonic()
    while load.accepted < REPORTS and time.monotonic() - resumed_at < 90:
        time.sleep(0.2)
    recovered = time.monotonic() - resumed_at

    result = load.join()
    settled = wait_until_settled(stack, result, timeout=120)
    books = report_books(stack, result)
    events = task_event_books(stack)
    print(
        f"\n[fault] broker frozen (SIGSTOP) for {PAUSE_SECONDS:.0f}s after {accepted_at_pause} "
        f"accepted; answers by then: {during}; accepted while frozen: {accepted_during}; "
        f"all accepted {recovered:.1f}s after SIGCONT; slowest 503: {result.slowest_503:.1f}s; "
        f"answers: {status_summary(result)}; settled {settled:.1f}s"
    )
    books.show("broker unreachable")
    events.show("broker unreachable")

    assert result.statuses["503"] > 0, "intake never answered 503 while the broker was frozen"
    assert result.missing_retry_after == 0, "a 503 came without Retry-After"
    assert result.slowest_503 <= INTAKE_PATIENCE_SECONDS, "intake kept the client waiting"
    # Nothing but 202 and 503: no 500, no client-side timeout.
    assert set(result.statuses) <= {"202", "503"}, status_summary(result)
    books.assert_nothing_lost()
    assert books.dlq == 0
    assert books.processed_events == books.applied
    events.assert_each_change_once()
