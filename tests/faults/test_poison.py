"""Poison on the progress-reports topic: mixed into the stream it goes to the DLQ with its error
and the rest flows; a flood of it stops the consumer instead of draining the topic."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from kafka import KafkaProducer

from shared import topics
from shared.events import ProgressReport, ProgressReportSubmitted, encode
from tests.faults.books import (
    TRACKER_GROUP,
    dead_letters,
    report_books,
    task_event_books,
    wait_until_settled,
)
from tests.faults.conftest import StackFactory
from tests.faults.harness import FaultStack, Seed, group_offsets, wait_until
from tests.faults.load import LoadGenerator, plan_reports

pytestmark = pytest.mark.faults

# Each kind of poison and the words its DLQ error must contain.
KINDS = {
    "undecodable": "undecodable",
    "wrong_version": "schema_version",
    "unknown_task": "unknown task",
}


def poison(kind: str, n: int, seed: Seed, stack: FaultStack) -> tuple[bytes, bytes]:
    """(key, value) of one poison message of `kind`, unique by `n`."""
    code = seed.tasks[n % len(seed.tasks)]
    if kind == "undecodable":
        return code.encode(), b"\xff\xfe\x00 not json #" + str(n).encode()
    event = ProgressReportSubmitted(
        event_id=uuid.uuid4(),
        occurred_at=stack.now(),
        task_code=code if kind == "wrong_version" else f"NO-SUCH-TASK-{n}",
        unit=seed.lead_of[code],
        key_id="faults",
        report=ProgressReport(percent=10, summary=f"毒消息 {kind} {n}"),
    )
    data = json.loads(encode(event))
    if kind == "wrong_version":
        data["schema_version"] = 99
    return code.encode(), json.dumps(data, ensure_ascii=False).encode()


def producer(stack: FaultStack) -> KafkaProducer:
    """A plain producer that writes straight onto the topic, past intake's validation."""
    return KafkaProducer(bootstrap_servers=stack.broker.bootstrap, acks="all")


@pytest.mark.timeout(300)
def test_poison_mixed_into_the_stream_reaches_the_dlq_and_the_rest_flows(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory()
    seed = stack.seed()
    tracker = stack.start_tracker()
    intake = stack.start_intake()
    load = LoadGenerator(
        intake.url,
        seed.keys,
        plan_reports(seed, 800, prefix="mixed"),
        workers=4,
        rate_per_second=80.0,
    ).start()

    sent: dict[bytes, str] = {}

    def inject() -> None:
        out = producer(stack)
        try:
            for n in range(5):
                for kind in KINDS:
                    key, value = poison(kind, n, seed, stack)
                    out.send(topics.PROGRESS_REPORTS, key=key, value=value).get(timeout=10)
                    sent[value] = kind
                    time.sleep(0.3)
        finally:
            out.close()

    injector = threading.Thread(target=inject, name="poison")
    load.wait_accepted(100)
    injector.start()
    injector.join(timeout=60)
    result = load.join()
    settled = wait_until_settled(stack, result, timeout=120)
    letters = dead_letters(stack)
    books = report_books(stack, result)
    events = task_event_books(stack)
    print(
        f"\n[fault] {len(sent)} poison messages mixed into {result.planned} reports; "
        f"settled {settled:.1f}s; tracker readiness {tracker.readiness()}"
    )
    books.show("poison mixed in")
    for letter in letters:
        kind = sent.get(letter.value, "?")
        print(f"[books]   DLQ {kind} @{letter.source_offset}: {letter.error}")
    events.show("poison mixed in")

    assert sorted(letter.value for letter in letters) == sorted(sent), "DLQ != poison sent"
    for letter in letters:
        assert KINDS[sent[letter.value]] in letter.error, letter
        assert letter.source_offset != "None:None", letter
    state = tracker.readiness()
    assert state is not None and state[0] == 200, f"tracker not ready after poison: {state}"
    books.assert_nothing_lost()
    assert books.dlq == len(sent)
    # Poison is never marked processed: only the good reports are.
    assert books.processed_events == books.applied
    events.assert_each_change_once()


LIMIT = 20
FLOOD = 60


@pytest.mark.timeout(240)
def test_poison_flood_halts_the_consumer_instead_of_draining_the_topic(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory()
    seed = stack.seed()
    tracker = stack.start_tracker(env={"DUBAN_POISON_STREAK_LIMIT": str(LIMIT)})
    intake = stack.start_intake()
    result = (
        LoadGenerator(intake.url, seed.keys, plan_reports(seed, 200, prefix="flood"), workers=4)
        .start()
        .join()
    )
    wait_until_settled(stack, result, timeout=120)

    out = producer(stack)
    try:
        # One key: the whole flood lands on one partition, one poison message after another.
        for n in range(FLOOD):
            _, value = poison(list(KINDS)[n % len(KINDS)], n, seed, stack)
            out.send(topics.PROGRESS_REPORTS, key=seed.tasks[0].encode(), value=value)
        out.flush(timeout=10)
    finally:
        out.close()

    def halted() -> str | None:
        state = tracker.readiness()
        consumer = str(state[1].get("checks", {}).get("consumer", "")) if state else ""
        return consumer if state and state[0] == 503 and consumer.startswith("halted") else None

    reason = wait_until(halted, timeout=60, what="the tracker's consumer to halt")
    time.sleep(3)  # anything still draining would show up in the DLQ by now
    letters = dead_letters(stack)
    offsets = group_offsets(stack.broker.bootstrap, TRACKER_GROUP, topics.PROGRESS_REPORTS)
    lag = sum(end - committed for committed, end in offsets.values())
    books = report_books(stack, result)
    print(
        f"\n[fault] {FLOOD} consecutive poison messages, streak limit {LIMIT}: {reason}; "
        f"DLQ holds {len(letters)}; uncommitted on the topic: {lag} "
        f"(committed, end by partition: {offsets}); "
        f"tracker alive: {tracker.alive}"
    )
    books.show("poison flood")

    assert len(letters) == LIMIT, "the consumer drained poison into the DLQ past its limit"
    # Nothing past the halt was consumed: the rest of the flood waits on the topic.
    assert lag >= FLOOD - LIMIT
    assert tracker.alive, "a halted consumer must leave the service up to say why"
    books.assert_nothing_lost()
