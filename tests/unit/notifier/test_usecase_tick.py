"""The escalation tick and composing digests (usecases/tick.py, usecases/digests.py), on the
fakes: what is planned, deduplicated, cancelled, inhibited, acknowledged and snoozed."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta

import pytest

from services.notifier.escalation.policy import EscalationPolicy, default_policy, local_policy
from services.notifier.usecases.digests import (
    STOPPED_REASON,
    UNKNOWN_TASK_REASON,
    compose_digests,
)
from services.notifier.usecases.folding import apply_task_event
from services.notifier.usecases.ports import (
    AcknowledgementRecord,
    NotificationRecord,
    SnoozeRecord,
)
from services.notifier.usecases.tick import CANCELLED_REASON, TickResult, count_pending, run_tick
from shared.events import TaskConditionChanged

from ._builders import OFFICE, sh
from ._scenario import HOUSING, POSITION, red, task_event
from .fakes import FakeStore


def fold(store: FakeStore, *events: TaskConditionChanged) -> None:
    with store.uow() as uow:
        for event in events:
            apply_task_event(uow, event, position=POSITION)
        uow.commit()


def tick(store: FakeStore, now: datetime, policy: EscalationPolicy | None = None) -> TickResult:
    with store.uow() as uow:
        result = run_tick(uow, policy=policy or default_policy(), now=now)
        uow.commit()
    return result


def rows(store: FakeStore) -> list[NotificationRecord]:
    return sorted(
        store.tables.notifications.values(), key=lambda r: (r.created_at, r.recipient, r.channel)
    )


def shape(records: list[NotificationRecord]) -> Counter[tuple[int, str, str, str]]:
    return Counter((r.level, r.recipient_role, r.recipient, r.channel) for r in records)


RED_PLAN = Counter(
    {
        (2, "lead_unit_leadership", HOUSING, "email"): 1,
        (2, "lead_unit_leadership", HOUSING, "dingtalk"): 1,
        (2, "supervising_office", OFFICE, "email"): 1,
        (2, "supervising_office", OFFICE, "webhook"): 1,
    }
)


def test_a_red_task_plans_its_督办_pending_for_the_dispatcher() -> None:
    store = FakeStore()
    fold(store, red())
    result = tick(store, sh(7, 1, 9))
    assert store.planning_locks == 1
    assert (result.planned, result.inserted_by_level, result.cancelled) == (4, {2: 4}, 0)
    assert shape(rows(store)) == RED_PLAN
    assert {(r.status, r.digest_id, r.attempts) for r in rows(store)} == {("pending", None, 0)}
    assert all(r.policy_fingerprint == default_policy().fingerprint for r in rows(store))
    assert all("T-A" in r.subject for r in rows(store))
    with store.uow() as uow:
        assert count_pending(uow) == 4


@pytest.mark.parametrize("repeats", [1, 2, 5])
def test_a_repeated_tick_inserts_nothing_new(repeats: int) -> None:
    store = FakeStore()
    fold(store, red())
    tick(store, sh(7, 1, 9))
    before = rows(store)
    for minute in range(repeats):
        again = tick(store, sh(7, 1, 10, minute))
        assert (again.planned, again.inserted, again.cancelled) == (4, 0, 0)
    assert rows(store) == before


@pytest.mark.parametrize(
    ("light", "status"),
    [("green", "in_progress"), ("blue", "completion_requested"), ("grey", "closed")],
)
def test_pending_notifications_the_plan_dropped_are_cancelled(light: str, status: str) -> None:
    store = FakeStore()
    fold(store, red())
    tick(store, sh(7, 1, 9))
    fold(store, task_event(at=sh(7, 1, 9, 30), light=light, status=status))
    result = tick(store, sh(7, 1, 10))
    assert (result.planned, result.cancelled) == (0, 4)
    assert {(r.status, r.last_error) for r in rows(store)} == {("cancelled", CANCELLED_REASON)}


def test_claimed_notifications_are_not_cancelled_by_the_tick() -> None:
    store = FakeStore()
    fold(store, red())
    tick(store, sh(7, 1, 9))
    with store.uow() as uow:
        assert (
            compose_digests(uow, zone=default_policy().zone, now=sh(7, 1, 9), batch_size=100) == 4
        )
        uow.commit()
    fold(store, task_event(at=sh(7, 1, 9, 30), light="green"))
    assert tick(store, sh(7, 1, 10)).cancelled == 0
    assert {r.status for r in rows(store)} == {"pending"}


@pytest.mark.parametrize(("light", "level_1"), [("yellow", True), ("red", False)])
def test_red_inhibits_the_yellow_催办(light: str, level_1: bool) -> None:
    store = FakeStore()
    # A report due within three days engages the 催办 whatever the light.
    fold(store, task_event(at=sh(7, 1, 0, 5), light=light, report_due_at=sh(7, 2, 18)))
    levels = set(tick(store, sh(7, 1, 9)).inserted_by_level)
    assert (1 in levels) is level_1
    assert (2 in levels) is (light == "red")


def test_stopped_and_unreadable_tasks_plan_nothing_and_others_still_do() -> None:
    store = FakeStore()
    fold(
        store,
        red("T-A"),
        task_event("T-B", at=sh(7, 1), light="blue", status="completion_requested"),
    )
    store.tables.conditions["T-C"] = store.tables.conditions["T-A"].__class__(
        task_code="T-C",
        light="red",
        light_since=sh(7, 1),
        occurred_at=sh(7, 1),
        event={},
        updated_at=sh(7, 1),
    )
    result = tick(store, sh(7, 1, 9))
    assert result.unreadable_tasks == ("T-C",)
    assert {code for r in rows(store) for code in r.task_codes} == {"T-A"}


def test_inbox_notifications_are_delivered_by_the_tick_as_digests() -> None:
    store = FakeStore()
    fold(store, red())
    result = tick(store, sh(7, 1, 9), local_policy())
    assert result.inbox_digests == 2  # the lead unit's leadership and the office
    assert {(r.status, r.attempts, r.delivered_at) for r in rows(store)} == {
        ("delivered", 1, sh(7, 1, 9))
    }
    digests = store.tables.digests.values()
    assert {(d.status, d.rounds, d.channel) for d in digests} == {("delivered", 1, "inbox")}
    assert {r.digest_id for r in rows(store)} == {d.id for d in digests}
    # Delivered, so the same window plans them again but inserts and delivers nothing.
    again = tick(store, sh(7, 1, 12), local_policy())
    assert (again.inserted, again.inbox_digests) == (0, 0)


def ack(level: int, at: datetime) -> AcknowledgementRecord:
    return AcknowledgementRecord(uuid.uuid4(), "T-A", level, "unit", HOUSING, "k", None, at)


@pytest.mark.parametrize(
    ("acked_at", "repeats_on_7_4"),
    [
        (None, True),  # no 签收: the 督办 repeats three days later
        (sh(7, 1, 10), False),  # acknowledged: no repeat
        (sh(6, 30, 10), True),  # a 签收 from before this red episode does not count
    ],
)
def test_acknowledgements_stop_repeats(acked_at: datetime | None, repeats_on_7_4: bool) -> None:
    store = FakeStore()
    fold(store, red())
    tick(store, sh(7, 1, 9), local_policy())
    if acked_at is not None:
        store.tables.acknowledgements.append(ack(2, acked_at))
    later = tick(store, sh(7, 4, 9), local_policy())
    assert (later.inserted > 0) is repeats_on_7_4


def snooze(level: int | None, until: datetime) -> SnoozeRecord:
    return SnoozeRecord(
        uuid.uuid4(), "T-A", level, until, "等待审计结论", "supervisor", OFFICE, "k", sh(6, 30)
    )


@pytest.mark.parametrize(
    ("level", "until", "planned_levels"),
    [
        (None, sh(7, 10), set()),  # the whole task is snoozed
        (2, sh(7, 10), set()),  # its only engaged level is snoozed
        (1, sh(7, 10), {2}),  # another level's snooze changes nothing
        (None, sh(7, 1, 8), {2}),  # an expired snooze changes nothing
    ],
)
def test_snoozes_silence_tasks_and_levels_while_they_last(
    level: int | None, until: datetime, planned_levels: set[int]
) -> None:
    store = FakeStore()
    fold(store, red())
    store.tables.snoozes.append(snooze(level, until))
    assert set(tick(store, sh(7, 1, 9)).inserted_by_level) == planned_levels


def test_a_snooze_cancels_what_was_planned_but_not_yet_claimed() -> None:
    store = FakeStore()
    fold(store, red())
    tick(store, sh(7, 1, 9))
    store.tables.snoozes.append(snooze(None, sh(7, 10)))
    assert tick(store, sh(7, 1, 10)).cancelled == 4


def test_nothing_is_planned_without_a_commit() -> None:
    store = FakeStore()
    fold(store, red())
    with store.uow() as uow:
        run_tick(uow, policy=default_policy(), now=sh(7, 1, 9))
    assert store.tables.notifications == {}


# ----------------------------------------------------------------------- composing

COMPOSED_AT = sh(7, 1, 9, 1)


def compose(store: FakeStore, now: datetime = COMPOSED_AT, batch_size: int = 100) -> int:
    with store.uow() as uow:
        composed = compose_digests(uow, zone=default_policy().zone, now=now, batch_size=batch_size)
        uow.commit()
    return composed


def test_compose_groups_pending_notifications_per_recipient_channel_and_window() -> None:
    store = FakeStore()
    fold(store, red("T-A"), red("T-B"))
    tick(store, sh(7, 1, 9))
    assert len(rows(store)) == 8
    assert compose(store) == 4  # two tasks, one digest per recipient and channel
    digests = list(store.tables.digests.values())
    assert {(d.status, d.attempts, d.rounds, d.lease_owner) for d in digests} == {
        ("sending", 0, 0, None)
    }
    assert {tuple(d.task_codes) for d in digests} == {("T-A", "T-B")}
    assert {d.recipient for d in digests} == {HOUSING, OFFICE}
    for digest in digests:
        members = [r for r in rows(store) if r.digest_id == digest.id]
        assert {(r.recipient, r.channel) for r in members} == {(digest.recipient, digest.channel)}
        assert set(digest.tasks) == {"T-A", "T-B"}  # the snapshot every resend renders from
    assert {r.status for r in rows(store)} == {"pending"}
    assert compose(store) == 0  # all claimed


def test_compose_leaves_a_batch_for_later() -> None:
    store = FakeStore()
    fold(store, red())
    tick(store, sh(7, 1, 9))
    assert compose(store, batch_size=1) == 1
    assert sum(r.digest_id is not None for r in rows(store)) == 1


def test_compose_does_nothing_while_another_composer_holds_the_lock() -> None:
    store = FakeStore()
    fold(store, red())
    tick(store, sh(7, 1, 9))
    store.composer_busy = True
    assert compose(store) == 0
    assert store.tables.digests == {}


@pytest.mark.parametrize(
    ("change", "reason"),
    [("unknown", UNKNOWN_TASK_REASON), ("closed", STOPPED_REASON)],
)
def test_compose_cancels_what_no_longer_applies(change: str, reason: str) -> None:
    store = FakeStore()
    fold(store, red())
    tick(store, sh(7, 1, 9))
    if change == "unknown":
        del store.tables.conditions["T-A"]
    else:
        fold(store, task_event(at=sh(7, 1, 9, 0), light="grey", status="closed"))
    assert compose(store) == 0
    assert {(r.status, r.last_error, r.digest_id) for r in rows(store)} == {
        ("cancelled", reason, None)
    }


def test_compose_fails_a_notification_that_cannot_be_rebuilt() -> None:
    store = FakeStore()
    fold(store, red())
    tick(store, sh(7, 1, 9))
    broken = next(r for r in rows(store) if r.channel == "webhook")
    broken.recipient_role = "nobody"
    assert compose(store) == 3
    row = store.tables.notifications[broken.id]
    assert row.status == "failed" and row.last_error is not None and "nobody" in row.last_error
    assert row.digest_id is None


def test_a_digest_id_is_the_same_when_composed_again_after_a_rollback() -> None:
    store = FakeStore()
    fold(store, red())
    tick(store, sh(7, 1, 9))
    with store.uow() as uow:
        compose_digests(uow, zone=default_policy().zone, now=sh(7, 1, 9, 1), batch_size=100)
        first = set(uow.digests._t.digests)
    assert store.tables.digests == {}
    compose(store, now=sh(7, 1, 9, 2) + timedelta(minutes=5))
    assert set(store.tables.digests) == first
