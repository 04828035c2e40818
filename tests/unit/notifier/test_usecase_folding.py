"""Folding task events (usecases/folding.py) and the consumer's handler, on the fakes."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from services.notifier.consumer import make_task_event_handler
from services.notifier.usecases.folding import apply_task_event, current_conditions
from services.notifier.usecases.ports import StoredCondition
from shared.events import TaskActionRecorded, encode
from shared.kafka import Outcome, PoisonMessage

from ._builders import sh
from ._scenario import POSITION, task_event
from .fakes import FakeStore


def fold(store: FakeStore, event: Any) -> Any:
    with store.uow() as uow:
        folded = apply_task_event(uow, event, position=POSITION)
        uow.commit()
    return folded


def test_a_new_task_event_is_stored_with_its_position() -> None:
    store = FakeStore()
    event = task_event(at=sh(7, 1, 0, 5), light="red")
    folded = fold(store, event)
    assert (folded.outcome, folded.changed) == (Outcome.APPLIED, True)
    stored = store.tables.conditions["T-A"]
    assert (stored.light, stored.light_since, stored.occurred_at) == (
        "red",
        event.light_since,
        event.occurred_at,
    )
    assert stored.event == event.model_dump(mode="json")
    assert stored.updated_at.tzinfo is not None
    assert store.tables.processed == {event.event_id: POSITION}


def test_a_redelivered_event_is_a_duplicate_and_changes_nothing() -> None:
    store = FakeStore()
    event = task_event(at=sh(7, 1, 0, 5), light="red")
    fold(store, event)
    # The same event id again, even carrying other content, is not folded twice.
    again = event.model_copy(update={"light": "green", "occurred_at": sh(7, 2)})
    folded = fold(store, again)
    assert (folded.outcome, folded.changed) == (Outcome.DUPLICATE, False)
    assert store.tables.conditions["T-A"].light == "red"


@pytest.mark.parametrize(
    ("second_at", "wins"),
    [
        (sh(7, 1, 0, 4), False),  # older than the one folded: arrived late, loses
        (sh(7, 1, 0, 5), True),  # the same instant: the later arrival wins
        (sh(7, 1, 0, 6), True),  # newer
        (sh(7, 3), True),
    ],
)
def test_an_older_event_arriving_late_loses(second_at: datetime, wins: bool) -> None:
    store = FakeStore()
    fold(store, task_event(at=sh(7, 1, 0, 5), light="red"))
    folded = fold(store, task_event(at=second_at, light="yellow"))
    assert folded.outcome is Outcome.APPLIED
    assert folded.changed is wins
    assert store.tables.conditions["T-A"].light == ("yellow" if wins else "red")
    # Either way the event counts as processed: a redelivery of it is a duplicate.
    assert len(store.tables.processed) == 2


def test_other_task_events_are_applied_without_touching_conditions() -> None:
    store = FakeStore()
    action = TaskActionRecorded(
        event_id=uuid.uuid4(),
        occurred_at=sh(7, 1),
        task_code="T-A",
        action="closed",
        actor_role="supervisor",
        actor_unit=None,
        details={},
    )
    folded = fold(store, action)
    assert (folded.outcome, folded.changed) == (Outcome.APPLIED, False)
    assert store.tables.conditions == {} and store.tables.processed == {}


def test_nothing_is_folded_without_a_commit() -> None:
    store = FakeStore()
    with store.uow() as uow:
        apply_task_event(uow, task_event(at=sh(7, 1), light="red"), position=POSITION)
    assert store.tables.conditions == {} and store.tables.processed == {}


@dataclass
class Record:
    value: bytes
    topic: str = "duban.task-events"
    partition: int = 0
    offset: int = 3


def test_the_handler_tolerates_unknown_fields_and_asks_for_a_tick_after_the_commit() -> None:
    store = FakeStore()
    seen_commits: list[int] = []
    handle = make_task_event_handler(
        store.uow, on_change=lambda: seen_commits.append(store.commits)
    )
    data = json.loads(encode(task_event(at=sh(7, 1), light="red")))
    data["added_later"] = {"by": "a newer tracker"}
    assert handle(Record(json.dumps(data).encode())) is Outcome.APPLIED
    assert seen_commits == [1]  # asked after the fold was durable
    stored = store.tables.conditions["T-A"].event
    assert "added_later" not in stored and stored["light"] == "red"
    # The same message again: a duplicate, and no tick is asked for.
    assert handle(Record(json.dumps(data).encode())) is Outcome.DUPLICATE
    assert seen_commits == [1]


def test_a_failing_tick_request_does_not_fail_the_durable_fold() -> None:
    store = FakeStore()

    def broken() -> None:
        raise RuntimeError("scheduler gone")

    handle = make_task_event_handler(store.uow, on_change=broken)
    assert handle(Record(encode(task_event(at=sh(7, 1), light="red")))) is Outcome.APPLIED
    assert "T-A" in store.tables.conditions


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        json.dumps({"event_type": "task.condition_changed", "schema_version": 2}).encode(),
        json.dumps({"event_type": "task.condition_changed", "schema_version": 1}).encode(),
    ],
)
def test_undecodable_messages_are_poison_and_store_nothing(raw: bytes) -> None:
    store = FakeStore()
    handle = make_task_event_handler(store.uow)
    with pytest.raises(PoisonMessage):
        handle(Record(raw))
    assert store.commits == 0


def test_an_unreadable_stored_event_is_reported_and_the_rest_still_read() -> None:
    store = FakeStore()
    fold(store, task_event("T-A", at=sh(7, 1), light="red"))
    fold(store, task_event("T-B", at=sh(7, 1), light="yellow"))
    store.tables.conditions["T-0"] = StoredCondition(
        task_code="T-0",
        light="red",
        light_since=sh(7, 1),
        occurred_at=sh(7, 1),
        event={"task_code": "T-0"},
        updated_at=sh(7, 1),
    )
    with store.uow() as uow:
        found, unreadable = current_conditions(uow.conditions, now=sh(7, 1, 9))
        only_b, _ = current_conditions(uow.conditions, now=sh(7, 1, 9), codes=["T-B"])
    assert [(c.task_id, c.light) for c in found] == [("T-A", "red"), ("T-B", "yellow")]
    assert unreadable == ["T-0"]
    assert [c.task_id for c in only_b] == ["T-B"]
