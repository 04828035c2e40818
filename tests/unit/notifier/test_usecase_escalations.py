"""签收, snoozes, the notification log, digests and a task's timeline
(usecases/escalations.py) on the fakes, and who may do and see what (access.py)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from services.notifier import access
from services.notifier.escalation.policy import default_policy, local_policy
from services.notifier.refusals import Refused
from services.notifier.usecases import escalations
from services.notifier.usecases.folding import apply_task_event
from services.notifier.usecases.tick import run_tick
from shared.events import ApiKeyPublished

from ._builders import OFFICE, sh
from ._scenario import CIVIL, FINANCE, HOUSING, POSITION, key, red
from .fakes import FakeStore

NOW = sh(7, 1, 10)
UNTIL = sh(7, 10)
POLICY = local_policy()  # every notice in the inbox: delivered by the tick


def delivered_store() -> FakeStore:
    """T-A red, its 督办 delivered to 市住房城乡建设委's leadership and the office."""
    store = FakeStore()
    with store.uow() as uow:
        apply_task_event(uow, red(), position=POSITION)
        uow.commit()
    with store.uow() as uow:
        run_tick(uow, policy=POLICY, now=sh(7, 1, 9))
        uow.commit()
    return store


def refusal(call: object) -> Refused:
    assert callable(call)
    with pytest.raises(Refused) as caught:
        call()
    return caught.value


def acknowledge(
    store: FakeStore, who: ApiKeyPublished, level: int = 2, task: str = "T-A"
) -> object:
    with store.uow() as uow:
        ack = escalations.acknowledge(
            uow, task_code=task, level=level, note="已部署整改", who=who, policy=POLICY, now=NOW
        )
        uow.commit()
    return ack


@pytest.mark.parametrize(
    ("who", "by_name"),
    [
        (key("unit", HOUSING), HOUSING),
        (key("supervisor"), OFFICE),
        (key("admin"), "系统管理员"),
        (key("leader"), "分管领导"),
    ],
)
def test_who_may_acknowledge(who: ApiKeyPublished, by_name: str) -> None:
    store = delivered_store()
    acknowledge(store, who)
    (ack,) = store.tables.acknowledgements
    assert (ack.task_code, ack.level, ack.by_role, ack.by_name, ack.key_id) == (
        "T-A",
        2,
        who.role,
        by_name,
        who.key_id,
    )
    assert (ack.note, ack.acknowledged_at) == ("已部署整改", NOW)


@pytest.mark.parametrize(
    ("who", "level", "task", "code", "status"),
    [
        (key("unit", CIVIL), 2, "T-A", "not_responsible", 403),  # not a responsible unit
        (key("unit", None), 2, "T-A", "key_without_unit", 403),
        (key("operator"), 2, "T-A", "not_allowed", 403),
        (key("unit", HOUSING), 4, "T-A", "unknown_level", 422),
        (key("supervisor"), 0, "T-A", "unknown_level", 422),
        (key("supervisor"), 2, "T-X", "unknown_task", 404),
        (key("supervisor"), 1, "T-A", "nothing_to_acknowledge", 409),  # no 催办 was sent
        # 市财政局 answers for the task but the 督办 went to the lead unit's leadership only.
        (key("unit", FINANCE), 2, "T-A", "nothing_to_acknowledge", 409),
    ],
)
def test_acknowledgements_that_are_refused(
    who: ApiKeyPublished, level: int, task: str, code: str, status: int
) -> None:
    store = delivered_store()
    refused = refusal(lambda: acknowledge(store, who, level, task))
    assert (refused.code, refused.http_status) == (code, status)
    assert store.tables.acknowledgements == []


def test_nothing_to_acknowledge_before_anything_was_delivered() -> None:
    store = FakeStore()
    with store.uow() as uow:
        apply_task_event(uow, red(), position=POSITION)
        uow.commit()
    with store.uow() as uow:
        run_tick(uow, policy=default_policy(), now=sh(7, 1, 9))  # pending, not delivered
        uow.commit()
    refused = refusal(lambda: acknowledge(store, key("supervisor")))
    assert refused.code == "nothing_to_acknowledge" and refused.field == "level"


def snooze(
    store: FakeStore,
    who: ApiKeyPublished,
    *,
    until: datetime = UNTIL,
    level: int | None = None,
    task: str = "T-A",
    known_elsewhere: bool = False,
) -> object:
    with store.uow() as uow:
        row = escalations.snooze(
            uow,
            task_code=task,
            level=level,
            until=until,
            reason="等待审计结论",
            who=who,
            policy=POLICY,
            now=NOW,
            task_known_elsewhere=known_elsewhere,
        )
        uow.commit()
    return row


@pytest.mark.parametrize(
    ("who", "level", "by_name"),
    [(key("supervisor"), None, OFFICE), (key("admin"), 2, "系统管理员")],
)
def test_the_office_may_snooze(who: ApiKeyPublished, level: int | None, by_name: str) -> None:
    store = delivered_store()
    snooze(store, who, level=level)
    (row,) = store.tables.snoozes
    assert (row.task_code, row.level, row.until, row.by_name, row.created_at) == (
        "T-A",
        level,
        sh(7, 10),
        by_name,
        NOW,
    )


def test_a_task_the_notifier_has_not_seen_may_be_snoozed_if_the_directory_knows_it() -> None:
    store = delivered_store()
    snooze(store, key("supervisor"), task="T-NEW", known_elsewhere=True)
    assert [s.task_code for s in store.tables.snoozes] == ["T-NEW"]


@pytest.mark.parametrize(
    ("who", "kwargs", "code", "status"),
    [
        (key("unit", HOUSING), {}, "office_only", 403),
        (key("leader"), {}, "office_only", 403),
        (key("operator"), {}, "office_only", 403),
        (key("supervisor"), {"task": "T-X"}, "unknown_task", 404),
        (key("supervisor"), {"level": 9}, "unknown_level", 422),
        (key("supervisor"), {"until": NOW}, "until_not_future", 422),
        (key("supervisor"), {"until": NOW - timedelta(hours=1)}, "until_not_future", 422),
        (key("supervisor"), {"until": NOW + timedelta(days=181)}, "until_too_far", 422),
    ],
)
def test_snoozes_that_are_refused(
    who: ApiKeyPublished, kwargs: dict[str, object], code: str, status: int
) -> None:
    store = delivered_store()
    refused = refusal(lambda: snooze(store, who, **kwargs))  # type: ignore[arg-type]
    assert (refused.code, refused.http_status) == (code, status)
    assert store.tables.snoozes == []


def test_the_longest_snooze_is_allowed() -> None:
    store = delivered_store()
    snooze(store, key("supervisor"), until=NOW + timedelta(days=180))
    assert len(store.tables.snoozes) == 1


# ----------------------------------------------------------------------- cancelling


def cancel(
    store: FakeStore,
    who: ApiKeyPublished,
    snooze_id: uuid.UUID,
    *,
    task: str = "T-A",
    now: datetime = NOW + timedelta(hours=1),
) -> object:
    with store.uow() as uow:
        row = escalations.cancel_snooze(
            uow, task_code=task, snooze_id=snooze_id, who=who, policy=POLICY, now=now
        )
        uow.commit()
    return row


def snoozed_store() -> tuple[FakeStore, uuid.UUID]:
    store = delivered_store()
    snooze(store, key("supervisor"))
    (row,) = store.tables.snoozes
    return store, row.id


@pytest.mark.parametrize(
    ("who", "by_name"), [(key("supervisor"), OFFICE), (key("admin"), "系统管理员")]
)
def test_the_office_may_cancel_a_snooze(who: ApiKeyPublished, by_name: str) -> None:
    store, snooze_id = snoozed_store()
    cancel(store, who, snooze_id)
    (row,) = store.tables.snoozes
    assert (row.cancelled_at, row.cancelled_by, row.cancelled_key_id) == (
        NOW + timedelta(hours=1),
        by_name,
        who.key_id,
    )
    # The snooze itself stays on record as it was.
    assert (row.until, row.reason, row.by_name) == (UNTIL, "等待审计结论", OFFICE)


def test_a_cancelled_snooze_stops_suppressing_at_once() -> None:
    store, snooze_id = snoozed_store()
    before = len(store.tables.notifications)
    with store.uow() as uow:
        run_tick(uow, policy=POLICY, now=sh(7, 4, 9))  # the repeat is due, but snoozed
        uow.commit()
    assert len(store.tables.notifications) == before
    cancel(store, key("supervisor"), snooze_id, now=sh(7, 4, 9, 30))
    with store.uow() as uow:
        assert uow.snoozes.in_force(["T-A"], sh(7, 4, 9, 30)) == []
        result = run_tick(uow, policy=POLICY, now=sh(7, 4, 9, 31))
        uow.commit()
    assert result.inserted_by_level == {2: 2}
    repeats = [n for n in store.tables.notifications.values() if n.sequence == 2]
    assert {(n.recipient, n.status) for n in repeats} == {
        (HOUSING, "delivered"),
        (OFFICE, "delivered"),
    }


@pytest.mark.parametrize(
    ("who", "case", "code", "status"),
    [
        (key("unit", HOUSING), "own", "office_only", 403),
        (key("leader"), "own", "office_only", 403),
        (key("operator"), "own", "office_only", 403),
        # Office only comes first: a unit learns nothing about which snoozes exist.
        (key("unit", HOUSING), "unknown", "office_only", 403),
        (key("supervisor"), "unknown", "unknown_snooze", 404),
        (key("supervisor"), "other_task", "unknown_snooze", 404),
        (key("supervisor"), "ended", "snooze_already_ended", 409),
    ],
)
def test_cancellations_that_are_refused(
    who: ApiKeyPublished, case: str, code: str, status: int
) -> None:
    store, snooze_id = snoozed_store()
    target = uuid.uuid4() if case == "unknown" else snooze_id
    task = "T-B" if case == "other_task" else "T-A"
    now = UNTIL if case == "ended" else NOW + timedelta(hours=1)
    refused = refusal(lambda: cancel(store, who, target, task=task, now=now))
    assert (refused.code, refused.http_status) == (code, status)
    assert [s.cancelled_at for s in store.tables.snoozes] == [None]


def test_cancelling_twice_is_refused_naming_the_rule() -> None:
    store, snooze_id = snoozed_store()
    cancel(store, key("supervisor"), snooze_id)
    first = store.tables.snoozes[0]
    refused = refusal(lambda: cancel(store, key("admin"), snooze_id, now=NOW + timedelta(hours=2)))
    assert (refused.code, refused.http_status) == ("snooze_already_cancelled", 409)
    assert "2022-07-01 11:00" in refused.message_zh and OFFICE in refused.message_zh
    assert store.tables.snoozes == [first]


# ----------------------------------------------------------------------- seeing


def listing(store: FakeStore, who: ApiKeyPublished, **filters: object) -> tuple[list[str], int]:
    with store.uow() as uow:
        rows, total = escalations.list_notifications(uow, who=who, **filters)  # type: ignore[arg-type]
    return [r.recipient for r in rows], total


@pytest.mark.parametrize("role", ["supervisor", "admin", "operator", "leader"])
def test_the_office_leaders_and_operators_see_the_whole_log(role: str) -> None:
    store = delivered_store()
    recipients, total = listing(store, key(role))
    assert (sorted(recipients), total) == (sorted([HOUSING, OFFICE]), 2)
    assert listing(store, key(role), recipient=OFFICE) == ([OFFICE], 1)


def test_a_unit_sees_only_what_was_sent_to_it() -> None:
    store = delivered_store()
    assert listing(store, key("unit", HOUSING)) == ([HOUSING], 1)
    assert listing(store, key("unit", HOUSING), recipient=HOUSING) == ([HOUSING], 1)
    assert listing(store, key("unit", CIVIL)) == ([], 0)
    refused = refusal(lambda: listing(store, key("unit", HOUSING), recipient=OFFICE))
    assert (refused.code, refused.field) == ("other_recipient", "recipient")
    assert refusal(lambda: listing(store, key("unit", None))).code == "key_without_unit"


@pytest.mark.parametrize(
    ("filters", "count", "shown"),
    [
        ({"task_code": "T-A"}, 2, 2),
        ({"task_code": "T-B"}, 0, 0),
        ({"level": 2}, 2, 2),
        ({"level": 1}, 0, 0),
        ({"status": "delivered"}, 2, 2),
        ({"status": "pending"}, 0, 0),
        ({"channel": "inbox"}, 2, 2),
        ({"channel": "email"}, 0, 0),
        ({"limit": 1}, 2, 1),
        ({"offset": 1}, 2, 1),
        ({"offset": 2}, 2, 0),
    ],
)
def test_listing_filters_and_pages(filters: dict[str, object], count: int, shown: int) -> None:
    store = delivered_store()
    recipients, total = listing(store, key("supervisor"), **filters)
    assert total == count
    assert len(recipients) == shown


@pytest.mark.parametrize(
    ("who", "sees"),
    [
        (key("supervisor"), {HOUSING, OFFICE}),
        (key("leader"), {HOUSING, OFFICE}),
        (key("unit", HOUSING), {HOUSING}),
        (key("unit", CIVIL), set()),
        (key("unit", None), set()),
    ],
)
def test_digest_details_follow_the_same_scope(who: ApiKeyPublished, sees: set[str]) -> None:
    store = delivered_store()
    visible = set()
    for digest in store.tables.digests.values():
        with store.uow() as uow:
            try:
                visible.add(escalations.get_digest(uow, digest_id=digest.id, who=who).recipient)
            except Refused as exc:
                assert (exc.code, exc.http_status) == ("unknown_digest", 404)
    assert visible == sees


def timeline(
    store: FakeStore, who: ApiKeyPublished, task: str = "T-A"
) -> escalations.TaskEscalations:
    with store.uow() as uow:
        return escalations.task_escalations(uow, task_code=task, who=who)


def test_a_task_timeline_for_the_office_and_for_a_unit() -> None:
    store = delivered_store()
    acknowledge(store, key("unit", HOUSING))
    snooze(store, key("supervisor"), level=2)
    full = timeline(store, key("supervisor"))
    assert (full.light, len(full.notifications), len(full.acknowledgements), len(full.snoozes)) == (
        "red",
        2,
        1,
        1,
    )
    mine = timeline(store, key("unit", HOUSING))
    assert [n.recipient for n in mine.notifications] == [HOUSING]
    # A co-organiser answers for the task: it sees the timeline, with no notices of its own.
    assert timeline(store, key("unit", FINANCE)).notifications == []
    refused = refusal(lambda: timeline(store, key("unit", CIVIL)))
    assert (refused.code, refused.http_status) == ("not_responsible", 403)
    assert refusal(lambda: timeline(store, key("supervisor"), "T-X")).code == "unknown_task"


def test_a_unit_notified_about_a_task_it_no_longer_answers_for_still_sees_its_notices() -> None:
    store = delivered_store()
    store.tables.conditions["T-A"].event["lead_units"] = [CIVIL]
    assert [n.recipient for n in timeline(store, key("unit", HOUSING)).notifications] == [HOUSING]


@pytest.mark.parametrize(
    ("who", "everything", "recipient"),
    [
        (key("supervisor"), True, None),
        (key("admin"), True, None),
        (key("operator"), True, None),
        (key("leader"), True, None),
        (key("unit", HOUSING), False, HOUSING),
        (key("unit", None), False, None),
    ],
)
def test_the_scope_of_each_role(
    who: ApiKeyPublished, everything: bool, recipient: str | None
) -> None:
    scope = access.scope(who)
    assert (scope.everything, scope.recipient) == (everything, recipient)
    assert scope.sees(OFFICE) is everything
    assert scope.sees(HOUSING) is (everything or recipient == HOUSING)
