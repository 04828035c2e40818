"""The overdue scan running in two tracker replicas at once, at the instant every task of the
2022 document falls due (2023-01-01 00:00 Asia/Shanghai), while reports keep arriving.

`FOR UPDATE SKIP LOCKED` hands each task to one replica per tick and the announced condition
stops a second event: each task turns red once, and its red transition is emitted once.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter, defaultdict

import pytest
from sqlalchemy import text

from shared import topics
from shared.clock import SHANGHAI
from shared.db import UnitOfWork
from tests.faults.books import report_books, task_event_books, wait_until_settled
from tests.faults.conftest import StackFactory
from tests.faults.harness import FaultStack, read_topic, wait_until
from tests.faults.load import LoadGenerator, plan_reports

pytestmark = pytest.mark.faults

MIDNIGHT = dt.datetime(2023, 1, 1, 0, 0, tzinfo=SHANGHAI)
LEAD_SECONDS = 30.0
SCANNED = "duban_tracker_scan_tasks_evaluated_total"
SCAN_ENV = {
    "DUBAN_SCAN_INTERVAL_SECONDS": "0.5",
    # Small batches: a tick takes many short transactions, so the replicas interleave.
    "DUBAN_SCAN_BATCH_SIZE": "2",
}


def red_transitions(stack: FaultStack) -> tuple[Counter[str], Counter[str]]:
    """Per task: red transitions announced on the topic (each event id once), and recorded
    as light changes by the tracker."""
    announced: Counter[str] = Counter()
    last: dict[str, str] = {}
    seen: set[str] = set()
    for message in read_topic(stack.broker.bootstrap, topics.TASK_EVENTS):
        event = json.loads(message.value)
        if event["event_id"] in seen or event.get("event_type") != "task.condition_changed":
            continue
        seen.add(event["event_id"])
        code = event["task_code"]
        if event["light"] == "red" and last.get(code) != "red":
            announced[code] += 1
        last[code] = event["light"]
    recorded: Counter[str] = Counter()
    with UnitOfWork(stack.session_factory) as uow:
        for code, details in uow.session.execute(
            text(
                "SELECT t.code, a.details FROM tracker.task_actions a "
                "JOIN tracker.tasks t ON t.id = a.task_id "
                "WHERE a.action = 'light_changed' ORDER BY a.id"
            )
        ):
            if details["to"] == "red" and details["from"] != "red":
                recorded[code] += 1
    return announced, recorded


def task_codes(stack: FaultStack) -> set[str]:
    """Every task in the catalog."""
    with UnitOfWork(stack.session_factory) as uow:
        return {code for (code,) in uow.session.execute(text("SELECT code FROM tracker.tasks"))}


def lights(stack: FaultStack) -> Counter[str]:
    """Tasks by light."""
    with UnitOfWork(stack.session_factory) as uow:
        return Counter(
            light for (light,) in uow.session.execute(text("SELECT light FROM tracker.tasks"))
        )


@pytest.mark.timeout(300)
def test_scan_in_two_replicas_turns_each_task_red_once(stack_factory: StackFactory) -> None:
    stack = stack_factory(clock_at=MIDNIGHT - dt.timedelta(seconds=LEAD_SECONDS))
    seed = stack.seed()
    first = stack.service("tracker-a", "tracker", SCAN_ENV)
    second = stack.service("tracker-b", "tracker", SCAN_ENV)
    first.start()
    second.start()
    first.wait_ready()
    second.wait_ready()
    intake = stack.start_intake()
    before_midnight = (MIDNIGHT - stack.now()).total_seconds()
    scanned_before = {r.name: r.metric(SCANNED) for r in (first, second)}
    lights_before = lights(stack)
    # Reports keep arriving across midnight, applied by both replicas while they scan.
    load = LoadGenerator(
        intake.url,
        seed.keys,
        plan_reports(seed, 600, prefix="midnight"),
        workers=4,
        rate_per_second=20.0,
    ).start()

    wait_until(
        lambda: stack.now() > MIDNIGHT + dt.timedelta(seconds=2),
        timeout=LEAD_SECONDS + 30,
        what="midnight",
    )
    codes = task_codes(stack)
    total = len(codes)
    wait_until(lambda: lights(stack)["red"] == total, timeout=60, what="every task red")
    result = load.join()
    wait_until_settled(stack, result, timeout=120)
    time.sleep(2)  # a few more ticks of both scans: nothing may be announced again
    scanned_after = {r.name: r.metric(SCANNED) for r in (first, second)}
    announced, recorded = red_transitions(stack)
    books = report_books(stack, result)
    events = task_event_books(stack)
    twice = sorted(code for code, n in announced.items() if n != 1)
    by_count: defaultdict[int, int] = defaultdict(int)
    for n in announced.values():
        by_count[n] += 1
    print(
        f"\n[fault] both replicas ready {before_midnight:.1f}s before midnight; lights before: "
        f"{dict(lights_before)}, after: {dict(lights(stack))}; tasks evaluated by each replica "
        f"before midnight {scanned_before}, at the end {scanned_after}; red transitions "
        f"announced per task: {dict(by_count)} (tasks: {total}); recorded: "
        f"{sum(recorded.values())}"
    )
    books.show("scan in two replicas")
    events.show("scan in two replicas")

    assert before_midnight > 0, "the replicas were not both up before the tasks fell due"
    # Both replicas took part in the scan that turned the tasks red.
    for replica in (first, second):
        assert scanned_after[replica.name] > scanned_before[replica.name], replica.name
    assert set(announced) == codes, "a task's red transition was never announced"
    assert not twice, f"red announced more than once for {twice[:10]}"
    assert recorded == announced
    books.assert_nothing_lost()
    events.assert_each_change_once()
