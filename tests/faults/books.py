"""The books: what the clients were told, against what the tracker, the topics and the DLQ hold.

Every test prints its books, so a failure says what was lost, duplicated or dead-lettered.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from shared import topics
from shared.db import UnitOfWork
from tests.faults.harness import FaultStack, group_lag, read_topic, wait_until
from tests.faults.load import LoadResult, key_of_summary

TRACKER_GROUP = "tracker"


@dataclass(frozen=True)
class StoredReport:
    """A row of `tracker.reports`."""

    event_id: uuid.UUID
    key: str | None
    task_code: str


def stored_reports(stack: FaultStack) -> list[StoredReport]:
    """Every report the tracker holds."""
    with UnitOfWork(stack.session_factory) as uow:
        rows = uow.session.execute(
            text(
                "SELECT r.event_id, r.summary, t.code FROM tracker.reports r "
                "JOIN tracker.tasks t ON t.id = r.task_id"
            )
        ).all()
    return [StoredReport(row[0], key_of_summary(row[1]), row[2]) for row in rows]


def processed_count(stack: FaultStack) -> int:
    """Rows of `tracker.processed_events`."""
    with UnitOfWork(stack.session_factory) as uow:
        return int(
            uow.session.execute(text("SELECT count(*) FROM tracker.processed_events")).scalar_one()
        )


def wait_applied(stack: FaultStack, count: int, *, timeout: float = 180.0) -> int:
    """Block until the tracker has applied at least `count` events; returns how many it has."""
    return wait_until(
        lambda: (n := processed_count(stack)) >= count and n,
        timeout=timeout,
        what=f"tracker applied {count} reports",
    )


@dataclass(frozen=True)
class DeadLetter:
    """A message on a DLQ topic, with the error the consumer gave it."""

    error: str
    value: bytes
    source_offset: str


def dead_letters(stack: FaultStack, topic: str = topics.PROGRESS_REPORTS) -> list[DeadLetter]:
    """Everything on `<topic>-dlq`."""
    letters = []
    for message in read_topic(stack.broker.bootstrap, topics.dlq(topic)):
        headers = {k: v.decode("utf-8", "replace") for k, v in (message.headers or [])}
        letters.append(
            DeadLetter(
                error=headers.get("error", ""),
                value=message.value,
                source_offset=f"{headers.get('source_partition')}:{headers.get('source_offset')}",
            )
        )
    return letters


@dataclass
class ReportBooks:
    """Reports: sent by clients, accepted with 202, applied by the tracker."""

    sent: int
    attempts: int
    retried: int
    accepted: int
    rejected: int
    gave_up: int
    applied: int
    duplicates: int
    lost: int
    landed_without_receipt: int
    wrong_event_id: int
    receipt_changed: int
    processed_events: int
    dlq: int
    on_topic: int
    topic_copies: int
    lost_keys: list[str] = field(default_factory=list)
    duplicate_keys: list[str] = field(default_factory=list)

    def show(self, title: str) -> None:
        """Print the books."""
        print(
            f"\n[books] {title}: sent={self.sent} attempts={self.attempts} "
            f"retried={self.retried} accepted={self.accepted} rejected={self.rejected} "
            f"gave_up={self.gave_up} applied={self.applied} duplicates={self.duplicates} "
            f"lost={self.lost} landed_without_202={self.landed_without_receipt} "
            f"wrong_event_id={self.wrong_event_id} receipt_changed={self.receipt_changed} "
            f"processed_events={self.processed_events} DLQ={self.dlq} "
            f"on_topic={self.on_topic} same_id_copies_on_topic={self.topic_copies}"
        )
        if self.lost_keys:
            print(f"[books]   lost: {self.lost_keys[:20]}")
        if self.duplicate_keys:
            print(f"[books]   duplicated: {self.duplicate_keys[:20]}")

    def assert_nothing_lost(self) -> None:
        """Every report answered 202 is in the tracker exactly once, under its receipt's id."""
        assert self.rejected == 0, "reports were rejected"
        assert self.gave_up == 0, "clients gave up before intake accepted their reports"
        assert self.accepted == self.sent, "not every report was accepted"
        assert self.lost == 0, f"accepted reports missing from the tracker: {self.lost_keys[:10]}"
        assert self.duplicates == 0, f"reports stored twice: {self.duplicate_keys[:10]}"
        assert self.applied == self.accepted
        assert self.wrong_event_id == 0, "a stored report carries another id than its receipt"
        assert self.receipt_changed == 0, "a retry with the same key got another event id"


def report_topic_counts(stack: FaultStack) -> tuple[int, int]:
    """(messages, extra copies of an event id) on the progress-reports topic; a copy is a
    retry with the same Idempotency-Key whose first attempt reached the broker after all."""
    messages = read_topic(stack.broker.bootstrap, topics.PROGRESS_REPORTS)
    ids: Counter[str] = Counter()
    for message in messages:
        try:
            ids[str(json.loads(message.value)["event_id"])] += 1
        except (ValueError, KeyError, TypeError):
            continue  # poison
    return len(messages), sum(n - 1 for n in ids.values())


def report_books(stack: FaultStack, load: LoadResult, *, extra_processed: int = 0) -> ReportBooks:
    """Reconcile what the clients were told with what the tracker stored."""
    stored = stored_reports(stack)
    rows_by_key: dict[str, list[StoredReport]] = defaultdict(list)
    for row in stored:
        if row.key is not None:
            rows_by_key[row.key].append(row)
    lost = sorted(k for k in load.receipts if k not in rows_by_key)
    duplicated = sorted(k for k, rows in rows_by_key.items() if len(rows) > 1)
    wrong_id = sum(
        1
        for key, event_id in load.receipts.items()
        if any(row.event_id != event_id for row in rows_by_key.get(key, []))
    )
    processed = processed_count(stack)
    on_topic, copies = report_topic_counts(stack)
    return ReportBooks(
        sent=load.planned,
        attempts=load.attempts,
        retried=load.retried,
        accepted=len(load.receipts),
        rejected=len(load.rejected),
        gave_up=len(load.gave_up),
        applied=sum(1 for k in load.receipts if len(rows_by_key.get(k, [])) == 1),
        duplicates=sum(len(rows) - 1 for rows in rows_by_key.values() if len(rows) > 1),
        lost=len(lost),
        landed_without_receipt=sum(1 for k in rows_by_key if k not in load.receipts),
        wrong_event_id=wrong_id,
        receipt_changed=load.receipt_changed,
        processed_events=processed - extra_processed,
        dlq=len(dead_letters(stack)),
        on_topic=on_topic,
        topic_copies=copies,
        lost_keys=lost,
        duplicate_keys=duplicated,
    )


def wait_until_settled(
    stack: FaultStack, load: LoadResult, *, timeout: float = 120.0, tracker_group: bool = True
) -> float:
    """Wait until every accepted report is stored, the tracker's group has committed to the
    end of the topic and the outbox is empty; returns how long it took. Does not fail: the
    books say what is missing."""
    started = time.monotonic()
    deadline = started + timeout
    wanted = set(load.receipts.values())
    while time.monotonic() < deadline:
        try:
            stored = {row.event_id for row in stored_reports(stack)}
            settled = (
                wanted <= stored
                and stack.outbox_backlog() == 0
                and (
                    not tracker_group
                    or group_lag(stack.broker.bootstrap, TRACKER_GROUP, topics.PROGRESS_REPORTS)
                    == 0
                )
            )
        except Exception as exc:  # the database or broker may still be coming back
            print(f"[books] not settled yet: {type(exc).__name__}: {exc}")
            settled = False
        if settled:
            return time.monotonic() - started
        time.sleep(0.5)
    return time.monotonic() - started


@dataclass
class EventBooks:
    """Task events: what the tracker decided to announce against what reached the topic."""

    outbox: int
    unpublished: int
    on_topic: int
    distinct: int
    redelivered_copies: int
    missing_from_topic: int
    unknown_on_topic: int
    repeated_conditions: int
    light_changes_recorded: int
    light_changes_emitted: int
    mismatched_tasks: list[str] = field(default_factory=list)
    repeated_examples: list[str] = field(default_factory=list)

    def show(self, title: str) -> None:
        """Print the books."""
        print(
            f"[books] {title} task events: outbox={self.outbox} "
            f"unpublished={self.unpublished} on_topic={self.on_topic} "
            f"distinct={self.distinct} redelivered_copies={self.redelivered_copies} "
            f"missing={self.missing_from_topic} unknown={self.unknown_on_topic} "
            f"emitted_twice={self.repeated_conditions} "
            f"light_changes recorded={self.light_changes_recorded} "
            f"emitted={self.light_changes_emitted} "
            f"mismatched_tasks={len(self.mismatched_tasks)}"
        )
        if self.mismatched_tasks:
            print(f"[books]   light history differs for: {self.mismatched_tasks[:10]}")
        if self.repeated_examples:
            print(f"[books]   announced twice: {self.repeated_examples[:10]}")

    def assert_each_change_once(self) -> None:
        """Every change announced, none announced twice (copies of one event id are the
        relay's at-least-once redelivery; consumers drop them by event id)."""
        assert self.unpublished == 0, "task events left in the outbox"
        assert self.missing_from_topic == 0, "task events in the outbox never reached the topic"
        assert self.unknown_on_topic == 0, "events on the topic the outbox never held"
        assert self.repeated_conditions == 0, (
            f"the same condition announced twice: {self.repeated_examples[:5]}"
        )
        assert not self.mismatched_tasks, (
            f"light history on the topic differs from the tracker's: {self.mismatched_tasks[:5]}"
        )
        assert self.light_changes_emitted == self.light_changes_recorded


# What differs between two announcements of one change: their ids and when they were made.
_NOT_THE_CONDITION = frozenset({"event_id", "occurred_at", "light_since"})


def _announced(event: dict[str, Any]) -> dict[str, Any]:
    """What an event says about its task; two distinct events saying the same thing in a
    row announce one change twice (whichever fields the tracker counts as the condition)."""
    return {k: v for k, v in event.items() if k not in _NOT_THE_CONDITION}


def _collapse(lights: list[str]) -> list[str]:
    collapsed: list[str] = []
    for light in lights:
        if not collapsed or collapsed[-1] != light:
            collapsed.append(light)
    return collapsed


def task_event_books(stack: FaultStack) -> EventBooks:
    """Reconcile the outbox, the task-events topic and the tracker's light-change history."""
    with UnitOfWork(stack.session_factory) as uow:
        outbox_rows = uow.session.execute(
            text("SELECT payload, published_at FROM tracker.outbox WHERE topic = :topic"),
            {"topic": topics.TASK_EVENTS},
        ).all()
        history = uow.session.execute(
            text(
                "SELECT t.code, a.details FROM tracker.task_actions a "
                "JOIN tracker.tasks t ON t.id = a.task_id "
                "WHERE a.action = 'light_changed' ORDER BY a.id"
            )
        ).all()
    outbox_ids = {json.loads(bytes(payload))["event_id"] for payload, _ in outbox_rows}
    unpublished = sum(1 for _, published_at in outbox_rows if published_at is None)

    messages = read_topic(stack.broker.bootstrap, topics.TASK_EVENTS)
    seen: set[str] = set()
    per_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in messages:
        event = json.loads(message.value)
        if event["event_id"] in seen:
            continue  # a copy of an event already delivered: consumers drop it by id
        seen.add(event["event_id"])
        if event.get("event_type") == "task.condition_changed":
            per_task[event["task_code"]].append(event)

    repeated: list[str] = []
    emitted_changes = 0
    mismatched: list[str] = []
    recorded: dict[str, list[str]] = defaultdict(list)
    for code, details in history:
        recorded[code].append(details["to"])
    for code, events in per_task.items():
        for before, after in itertools.pairwise(events):
            if _announced(before) == _announced(after):
                repeated.append(f"{code} {after['light']} {after['status']} {after['event_id']}")
        lights = _collapse([e["light"] for e in events])
        emitted_changes += len(lights)
        if lights != _collapse(recorded.get(code, [])):
            mismatched.append(code)
    mismatched += sorted(code for code in recorded if code not in per_task)
    return EventBooks(
        outbox=len(outbox_rows),
        unpublished=unpublished,
        on_topic=len(messages),
        distinct=len(seen),
        redelivered_copies=len(messages) - len(seen),
        missing_from_topic=len(outbox_ids - seen),
        unknown_on_topic=len(seen - outbox_ids),
        repeated_conditions=len(repeated),
        light_changes_recorded=sum(len(_collapse(v)) for v in recorded.values()),
        light_changes_emitted=emitted_changes,
        mismatched_tasks=mismatched,
        repeated_examples=repeated,
    )


def status_summary(load: LoadResult) -> str:
    """The HTTP answers the clients got, e.g. `202×3000 503×12`."""
    counts: Counter[str] = load.statuses
    return " ".join(f"{status}×{n}" for status, n in sorted(counts.items()))
