"""Applying a progress report, over fake repositories."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest

from services.tracker.usecases.evaluation import reevaluate
from services.tracker.usecases.reports import UnknownTask, UnknownUnit, apply_report
from shared import topics
from shared.events import (
    IndicatorValue,
    MilestoneUpdate,
    ProgressReport,
    ProgressReportSubmitted,
)
from shared.kafka import MessagePosition, Outcome, PoisonMessage

from .fakes import CO, LEAD, OTHER, START, FakeUnitOfWork, make_task, uow_with

AT = START - dt.timedelta(hours=1)
POSITION = MessagePosition(topics.PROGRESS_REPORTS, 0, 7)


def submitted(
    *,
    unit: str = LEAD,
    code: str = "T2022-001",
    at: dt.datetime = AT,
    event_id: uuid.UUID | None = None,
    **report: Any,
) -> ProgressReportSubmitted:
    body: dict[str, Any] = {"percent": 40, "summary": "按计划推进。"}
    body.update(report)
    return ProgressReportSubmitted(
        event_id=event_id or uuid.uuid4(),
        occurred_at=at,
        task_code=code,
        unit=unit,
        key_id="abcdefgh",
        report=ProgressReport(**body),
    )


def apply(uow: FakeUnitOfWork, event: ProgressReportSubmitted) -> Outcome:
    return apply_report(uow, event, position=POSITION, now=START)


@pytest.mark.parametrize(
    ("status", "moves_to"),
    [
        ("not_started", "in_progress"),
        ("in_progress", "in_progress"),
        ("returned", "in_progress"),
    ],
)
def test_the_lead_units_report_moves_an_open_task(status: str, moves_to: str) -> None:
    task = make_task(status=status, return_comment="请补充" if status == "returned" else None)
    uow = uow_with(task)

    assert apply(uow, submitted(percent=55, blockers="资金未到位")) is Outcome.APPLIED

    assert (task.status, task.percent, task.return_comment) == (moves_to, 55, None)
    assert task.last_report_has_blockers is True
    assert task.last_report_at == AT
    [report] = uow.reports.stored
    assert (report.role, report.unit_id, report.task_id, report.percent) == ("lead", 1, task.id, 55)
    assert uow.tasks.locked == [task.code]


@pytest.mark.parametrize("status", ["not_started", "in_progress", "returned"])
@pytest.mark.parametrize("unit", [CO, OTHER])
def test_a_report_by_a_unit_not_leading_is_kept_but_does_not_move_the_task(
    status: str, unit: str
) -> None:
    task = make_task(status=status, percent=10)
    uow = uow_with(task)

    assert apply(uow, submitted(unit=unit, percent=90, period="2022-04")) is Outcome.APPLIED

    assert (task.status, task.percent, task.reported_periods) == (status, 10, [])
    [report] = uow.reports.stored
    assert report.role == ("co" if unit == CO else "none")
    # Any report counts as news for the notifier's acknowledgement rule.
    assert task.last_report_at == AT


@pytest.mark.parametrize("status", ["completion_requested", "closed"])
@pytest.mark.parametrize("unit", [LEAD, CO])
def test_a_report_after_the_completion_request_is_recorded_only(status: str, unit: str) -> None:
    task = make_task(status=status, percent=100, milestones=["开工"])
    uow = uow_with(task)

    event = submitted(
        unit=unit, percent=20, period="2022-04", milestones=[{"milestone": "开工", "done": True}]
    )
    assert apply(uow, event) is Outcome.APPLIED

    assert (task.status, task.percent, task.reported_periods) == (status, 100, [])
    assert task.milestones[0].done_at is None
    assert len(uow.reports.stored) == 1


def test_a_redelivered_event_is_a_duplicate_and_changes_nothing() -> None:
    task = make_task()
    uow = uow_with(task)
    event = submitted()
    assert apply(uow, event) is Outcome.APPLIED
    outbox, timeline = len(uow.outbox.queued), len(uow.timeline.entries)

    assert apply(uow, event) is Outcome.DUPLICATE
    assert apply(uow, submitted(event_id=event.event_id, percent=99)) is Outcome.DUPLICATE

    assert len(uow.reports.stored) == 1
    assert task.percent == 40
    assert (len(uow.outbox.queued), len(uow.timeline.entries)) == (outbox, timeline)
    assert uow.processed.seen[event.event_id] == POSITION


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (submitted(code="T2099-404"), UnknownTask),
        (submitted(unit="不存在的单位"), UnknownUnit),
    ],
)
def test_an_unknown_task_or_unit_is_poison(
    event: ProgressReportSubmitted, error: type[PoisonMessage]
) -> None:
    uow = uow_with(make_task())
    with pytest.raises(error) as raised:
        apply(uow, event)
    assert isinstance(raised.value, PoisonMessage)
    assert "未知" in str(raised.value)
    assert uow.reports.stored == []
    assert uow.outbox.queued == []


@pytest.mark.parametrize("length", [1, 199, 200, 201, 300])
def test_milestones_are_matched_by_their_first_200_characters(length: int) -> None:
    text = ("节" * length)[:length]
    task = make_task(milestones=[text, "其他节点"])
    uow = uow_with(task)

    apply(uow, submitted(milestones=[{"milestone": text[:200], "done": True}]))

    assert task.milestones[0].done_at == AT
    assert task.milestones[1].done_at is None


def test_a_milestone_done_keeps_the_first_date_and_one_not_done_stays_open() -> None:
    task = make_task(milestones=["开工", "竣工"])
    uow = uow_with(task)
    apply(uow, submitted(milestones=[MilestoneUpdate(milestone="开工", done=True)]))
    later = AT + dt.timedelta(days=3)
    apply(
        uow,
        submitted(
            at=later,
            milestones=[
                MilestoneUpdate(milestone="开工", done=True),
                MilestoneUpdate(milestone="竣工", done=False),
            ],
        ),
    )
    assert [m.done_at for m in task.milestones] == [AT, None]


@pytest.mark.parametrize("unit", [LEAD, CO])
def test_targets_take_the_lead_units_reported_values(unit: str) -> None:
    task = make_task(targets=["新增就业", "新开工项目"])
    uow = uow_with(task)

    apply(
        uow,
        submitted(unit=unit, indicators=[IndicatorValue(indicator="新增就业", value=Decimal(42))]),
    )

    expected = Decimal(42) if unit == LEAD else None
    assert [t.actual for t in task.targets] == [expected, None]


@pytest.mark.parametrize(
    ("cadence", "period", "expected"),
    [
        ("monthly", "2022-04", ["2022-04"]),
        ("quarterly", "2022-Q1", ["2022-Q1"]),
        (None, "2022-04", ["2022-04"]),
        (None, None, []),
    ],
)
def test_a_stated_period_joins_reported_periods_once(
    cadence: str | None, period: str | None, expected: list[str]
) -> None:
    task = make_task(cadence=cadence, deadline_kind="continuous" if cadence else "complete")
    uow = uow_with(task)

    apply(uow, submitted(period=period))
    apply(uow, submitted(period=period, at=AT + dt.timedelta(minutes=1)))

    assert task.reported_periods == expected
    assert [r.period for r in uow.reports.stored] == [period, period]


@pytest.mark.parametrize(
    ("cadence", "answered"),
    [
        ("monthly", ["2022-01", "2022-02", "2022-03"]),
        ("quarterly", ["2022-Q1", "2022-Q2", "2022-Q2"]),
    ],
)
def test_an_unstated_period_answers_the_report_owed(cadence: str, answered: list[str]) -> None:
    # On 2022-05-20 the earliest owed report is answered first; once none is owed, the
    # report is for the period that contains the day it was filed.
    task = make_task(cadence=cadence, deadline_kind="continuous")
    uow = uow_with(task)

    for minute in range(3):
        apply(uow, submitted(at=AT + dt.timedelta(minutes=minute)))

    assert [r.period for r in uow.reports.stored] == answered
    assert task.reported_periods == sorted(set(answered))


@pytest.mark.parametrize("unit", [CO, OTHER])
def test_a_period_answered_by_a_unit_not_leading_is_not_counted(unit: str) -> None:
    task = make_task(cadence="monthly", deadline_kind="continuous")
    uow = uow_with(task)
    apply(uow, submitted(unit=unit, period="2022-04"))
    assert uow.reports.stored[0].period == "2022-04"
    assert task.reported_periods == []


def test_the_latest_report_time_never_goes_back() -> None:
    task = make_task()
    uow = uow_with(task)
    apply(uow, submitted(at=AT))
    apply(uow, submitted(at=AT - dt.timedelta(days=5)))
    assert task.last_report_at == AT


def test_a_light_change_is_recorded_and_announced_once() -> None:
    # Due 2022-06-30 and nothing reported: due soon is yellow by 2022-06-25.
    task = make_task(light="green", light_changed_at=START)
    uow = uow_with(task)
    now = dt.datetime(2022, 6, 25, 9, tzinfo=START.tzinfo)

    apply_report(uow, submitted(percent=10, at=now), position=POSITION, now=now)
    assert reevaluate(uow, task, now=now) is False

    [change] = [e for e in uow.timeline.entries if e.action == "light_changed"]
    assert (change.details["from"], change.details["to"]) == ("green", "yellow")
    assert change.actor_role == "system"
    [event] = uow.outbox.events("task.condition_changed")
    assert (event["light"], event["previous_light"], event["status"]) == (
        "yellow",
        "green",
        "in_progress",
    )
    assert event["last_report_at"] == now.isoformat()
    assert task.light_changed_at == now


def test_a_report_that_leaves_the_condition_as_announced_announces_nothing() -> None:
    task = make_task()
    uow = uow_with(task)
    apply(uow, submitted(at=AT))
    announced = len(uow.outbox.events("task.condition_changed"))
    assert announced == 1

    # The same instant again: last_report_at, light, status and due are as announced.
    apply(uow, submitted(at=AT, percent=41))

    assert len(uow.outbox.events("task.condition_changed")) == announced
    assert uow.timeline.kinds().count("light_changed") == 1


def test_a_later_report_is_news_for_the_notifier_even_with_the_same_light() -> None:
    task = make_task()
    uow = uow_with(task)
    apply(uow, submitted(at=AT))
    apply(uow, submitted(at=AT + dt.timedelta(hours=1)))
    events = uow.outbox.events("task.condition_changed")
    assert len(events) == 2
    assert events[0]["light"] == events[1]["light"]
    assert events[1]["previous_light"] is None
    assert events[1]["last_report_at"] == (AT + dt.timedelta(hours=1)).isoformat()
    assert uow.timeline.kinds().count("light_changed") == 1
