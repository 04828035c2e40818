"""Quiet hours (policy `quiet_hours`): when a held notice may go, across weekends, 国庆 and a
调休 Saturday; the engine planning a held notice for the window it goes in; the tick and the
composer holding it on the fakes; and the policy keys' validation."""

from __future__ import annotations

import datetime as dt

import pytest

from services.notifier.escalation.engine import Recipient, SentRecord, evaluate, release_at
from services.notifier.escalation.policy import (
    DEFAULT_POLICY_PATH,
    PolicyError,
    QuietHours,
    RecipientRole,
    default_policy,
    local_policy,
    parse_policy,
)
from services.notifier.usecases.digests import compose_digests
from services.notifier.usecases.folding import apply_task_event
from services.notifier.usecases.tick import run_tick
from shared.workcal import WorkCalendar, standard_calendar
from tests.policy_text import without_quiet_hours

from ._builders import SHANGHAI, any_hour, task
from ._scenario import POSITION, task_event
from .fakes import FakeStore

POLICY = default_policy()


def at(month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2022, month, day, hour, minute, tzinfo=SHANGHAI)


MONDAY_0830 = at(10, 17, 8, 30)


@pytest.mark.parametrize(
    ("level", "planned", "goes"),
    [
        # A weekend waits for Monday's opening.
        (1, at(10, 15, 10), MONDAY_0830),  # Saturday
        (2, at(10, 16, 23, 59), MONDAY_0830),  # Sunday night
        (1, at(10, 14, 18, 0), MONDAY_0830),  # Friday at closing: the hours end at 18:00
        (1, at(10, 17, 3, 0), MONDAY_0830),  # Monday before opening
        # Within the hours it goes at once.
        (1, at(10, 17, 8, 30), at(10, 17, 8, 30)),
        (2, at(10, 14, 17, 59), at(10, 14, 17, 59)),
        # 国庆 (1–7 October) waits for the 调休 Saturday 8 October, a working day.
        (1, at(9, 30, 18, 30), at(10, 8, 8, 30)),
        (2, at(10, 3, 9, 0), at(10, 8, 8, 30)),
        (1, at(10, 7, 20, 0), at(10, 8, 8, 30)),
        (1, at(10, 8, 10, 0), at(10, 8, 10, 0)),  # the 调休 Saturday itself is open
        (1, at(10, 9, 19, 0), at(10, 10, 8, 30)),  # and Sunday 9 October too (调休)
        # 通报 is not held: it goes at any time, holidays included.
        (3, at(10, 15, 3, 0), at(10, 15, 3, 0)),
        (3, at(10, 1, 23, 0), at(10, 1, 23, 0)),
    ],
)
def test_when_a_notice_may_go(level: int, planned: dt.datetime, goes: dt.datetime) -> None:
    assert release_at(level, planned, POLICY, standard_calendar()) == goes


def test_an_instant_in_another_zone_is_read_in_the_policy_zone() -> None:
    saturday_utc = dt.datetime(2022, 10, 15, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
    assert release_at(1, saturday_utc, POLICY) == MONDAY_0830


def test_the_override_file_calendar_is_the_one_used() -> None:
    # A year the package does not know, with its days given by overrides: 2031-01-06 (Mon)
    # declared a holiday, so a notice planned that Sunday waits for Tuesday.
    calendar = WorkCalendar(holidays=[dt.date(2031, 1, 6)], override_years=[2031])
    sunday = dt.datetime(2031, 1, 5, 12, 0, tzinfo=SHANGHAI)
    tuesday = dt.datetime(2031, 1, 7, 8, 30, tzinfo=SHANGHAI)
    assert release_at(1, sunday, POLICY, calendar) == tuesday


def test_every_day_hours_ignore_the_calendar() -> None:
    quiet = QuietHours(working_days_only=False, start=dt.time(9), end=dt.time(17), levels=(1,))
    zone = POLICY.zone
    calendar = standard_calendar()
    assert quiet.release_at(1, at(10, 15, 20), zone=zone, calendar=calendar) == at(10, 16, 9)
    assert quiet.release_at(1, at(10, 15, 7), zone=zone, calendar=calendar) == at(10, 15, 9)
    assert quiet.release_at(1, at(10, 1, 12), zone=zone, calendar=calendar) == at(10, 1, 12)
    assert quiet.release_at(2, at(10, 15, 20), zone=zone, calendar=calendar) == at(10, 15, 20)


def test_without_quiet_hours_everything_goes_at_once() -> None:
    assert release_at(1, at(10, 15, 3), any_hour(POLICY)) == at(10, 15, 3)


def test_release_needs_an_aware_instant() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        release_at(1, dt.datetime(2022, 10, 15, 10), POLICY)  # noqa: DTZ001


# ----------------------------------------------------------------------- the engine


def test_a_notice_planned_on_saturday_is_held_for_mondays_window() -> None:
    condition = task(light="yellow", yellow_since=at(10, 14, 0, 5))
    saturday = evaluate([condition], [], [], [], POLICY, at(10, 15, 10)).notifications
    sunday = evaluate([condition], [], [], [], POLICY, at(10, 16, 10)).notifications
    monday = evaluate([condition], [], [], [], POLICY, at(10, 17, 9)).notifications
    assert saturday and {n.level for n in saturday} == {1}
    assert {(n.not_before, n.window_start) for n in saturday} == {(MONDAY_0830, at(10, 17, 0))}
    # Every tick until it goes plans the same notification; once the hours open, it is no
    # longer held and keeps its id.
    assert [n.notification_id for n in sunday] == [n.notification_id for n in saturday]
    assert [n.notification_id for n in monday] == [n.notification_id for n in saturday]
    assert {n.not_before for n in monday} == {None}
    # The reply date counts from the day it goes out.
    assert {n.respond_by for n in saturday} == {dt.date(2022, 10, 20)}


def test_a_bulletin_is_not_held_while_the_notice_before_it_would_be() -> None:
    condition = task(light="red", red_since=at(10, 1, 0), days_overdue=14)
    history_free = evaluate([condition], [], [], [], POLICY, at(10, 15, 3)).notifications
    assert {(n.level, n.not_before) for n in history_free} == {(2, MONDAY_0830)}
    # 通报 is due too once 督办 went out a week ago: it goes now, at 3 a.m. on a Saturday.
    office = Recipient(RecipientRole.SUPERVISING_OFFICE, POLICY.supervising_office)
    sent = [SentRecord(condition.task_id, 2, office, at(10, 8, 9))]
    plan = evaluate([condition], sent, [], [], POLICY, at(10, 15, 3)).notifications
    assert {(n.level, n.not_before) for n in plan if n.level == 3} == {(3, None)}


# ----------------------------------------------------------------------- tick and composer


def test_the_tick_records_a_held_inbox_notice_and_the_composer_waits_for_its_time() -> None:
    policy = local_policy()  # every recipient on the inbox, which the tick delivers itself
    store = FakeStore()
    with store.uow() as uow:
        apply_task_event(uow, task_event(at=at(10, 14, 0, 5), light="yellow"), position=POSITION)
        uow.commit()
    with store.uow() as uow:
        result = run_tick(uow, policy=policy, now=at(10, 15, 10))
        uow.commit()
    assert result.inbox_digests == 0
    held = list(store.tables.notifications.values())
    assert held and {(n.status, n.not_before, n.held) for n in held} == {
        ("pending", MONDAY_0830, True)
    }
    with store.uow() as uow:
        run_tick(uow, policy=policy, now=at(10, 16, 10))  # Sunday: the same, still held
        uow.commit()
    assert sorted(store.tables.notifications) == sorted(n.id for n in held)
    with store.uow() as uow:
        assert compose_digests(uow, zone=policy.zone, now=at(10, 17, 8, 29), batch_size=50) == 0
        uow.commit()
    with store.uow() as uow:
        assert compose_digests(uow, zone=policy.zone, now=MONDAY_0830, batch_size=50) == len(held)
        uow.commit()
    assert {n.digest_id is not None for n in store.tables.notifications.values()} == {True}


def test_a_held_notice_is_cancelled_if_the_task_recovers_before_it_goes() -> None:
    policy = local_policy()
    store = FakeStore()
    with store.uow() as uow:
        apply_task_event(uow, task_event(at=at(10, 14, 0, 5), light="yellow"), position=POSITION)
        uow.commit()
    with store.uow() as uow:
        run_tick(uow, policy=policy, now=at(10, 15, 10))
        uow.commit()
    with store.uow() as uow:
        apply_task_event(uow, task_event(at=at(10, 16, 9), light="green"), position=POSITION)
        result = run_tick(uow, policy=policy, now=at(10, 16, 10))
        uow.commit()
    assert result.cancelled == len(store.tables.notifications) > 0
    assert {n.status for n in store.tables.notifications.values()} == {"cancelled"}


# ----------------------------------------------------------------------- the policy keys


def test_the_shipped_policies_hold_reminders_and_notices_to_working_hours() -> None:
    for policy in (default_policy(), local_policy()):
        assert policy.quiet_hours == QuietHours(
            working_days_only=True, start=dt.time(8, 30), end=dt.time(18, 0), levels=(1, 2)
        )


def test_a_policy_without_quiet_hours_sends_at_any_time_and_hashes_without_them() -> None:
    without = parse_policy(without_quiet_hours(DEFAULT_POLICY_PATH.read_text(encoding="utf-8")))
    assert without.quiet_hours is None
    assert "quiet_hours" not in without.model_dump(mode="json", exclude={"quiet_hours"})
    assert without.fingerprint != default_policy().fingerprint
    assert without.fingerprint == any_hour(default_policy()).fingerprint


@pytest.mark.parametrize(
    ("block", "message", "offset"),
    [
        ('  start: "18:00"\n  end: "08:30"\n', "end must be later than start", 1),
        ("  start: 8:30\n", "write the time in quotes", 0),
        ('  start: "25:00"\n', "quiet_hours.start", 0),
        ("  levels: [1, 4]\n", "no level 4", 0),
        ("  weekdays: true\n", "quiet_hours.weekdays", 0),
    ],
)
def test_bad_quiet_hours_name_their_line(block: str, message: str, offset: int) -> None:
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    start = text.index("quiet_hours:")
    end = text.index("levels: [1, 2]\n", start) + len("levels: [1, 2]\n")
    bad = text[:start] + "quiet_hours:\n" + block + text[end:]
    line = bad[: bad.index(block)].count("\n") + 1 + offset
    with pytest.raises(PolicyError) as caught:
        parse_policy(bad, "policy.yaml")
    assert message in str(caught.value)
    assert f"policy.yaml:{line}:" in str(caught.value)
