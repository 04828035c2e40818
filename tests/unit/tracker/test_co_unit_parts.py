"""Co-units' parts in the use cases, over fake repositories: a co-unit's report is stored as
its part, a consolidated report's citations are checked, re-evaluation announces missing parts."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from services.tracker.orm import Task, TaskUnit
from services.tracker.policy.supervision import in_force
from services.tracker.usecases.evaluation import reevaluate
from shared.clock import SHANGHAI
from shared.workcal import standard_calendar

from .fakes import CO, LEAD, OTHER, FakeUnitOfWork, make_task, uow_with
from .test_apply_report import apply, submitted

MAY = dt.datetime(2022, 5, 20, 9, tzinfo=SHANGHAI)


@pytest.fixture(autouse=True)
def shipped_policy() -> Iterator[None]:
    in_force().install(None, standard_calendar())
    yield
    in_force().install(None, standard_calendar())


def monthly(**fields: Any) -> Task:
    return make_task(cadence="monthly", deadline_kind="continuous", due=None, **fields)


def co_unit(task: Task) -> TaskUnit:
    [assignment] = [a for a in task.assignments if a.role == "co"]
    return assignment


def test_a_co_units_report_is_stored_as_its_part_for_the_period() -> None:
    task = monthly()
    uow = uow_with(task)
    apply(uow, submitted(unit=CO, period="2022-03", at=MAY))
    apply(uow, submitted(unit=CO, period="2022-03", at=MAY + dt.timedelta(minutes=1)))

    assert co_unit(task).reported_periods == ["2022-03"]
    assert task.reported_periods == []  # the lead's own periods are untouched
    assert [(r.role, r.period) for r in uow.reports.stored] == [("co", "2022-03")] * 2


def test_a_co_units_unstated_period_answers_its_own_oldest_part_owed() -> None:
    # The lead has filed January to April; the co-unit nothing. Its first report answers
    # January, its own oldest part owed, not the lead's next period.
    task = monthly(reported_periods=["2022-01", "2022-02", "2022-03", "2022-04"])
    uow = uow_with(task)
    for minute in range(2):
        apply(uow, submitted(unit=CO, at=MAY + dt.timedelta(minutes=minute)))
    assert co_unit(task).reported_periods == ["2022-01", "2022-02"]


@pytest.mark.parametrize("status", ["completion_requested", "closed"])
def test_a_part_filed_after_the_completion_request_is_recorded_only(status: str) -> None:
    task = monthly(status=status)
    uow = uow_with(task)
    apply(uow, submitted(unit=CO, period="2022-03", at=MAY))
    assert co_unit(task).reported_periods == []
    assert len(uow.reports.stored) == 1


def test_a_report_by_a_unit_not_assigned_is_no_part() -> None:
    task = monthly()
    uow = uow_with(task)
    apply(uow, submitted(unit=OTHER, period="2022-03", at=MAY))
    assert [a.reported_periods for a in task.assignments] == [[], []]


def filed_part(uow: FakeUnitOfWork, task: Task, period: str) -> uuid.UUID:
    event = submitted(unit=CO, period=period, at=MAY)
    apply(uow, event)
    return event.event_id


def test_the_lead_cites_parts_of_the_task_and_nothing_else() -> None:
    task, elsewhere = monthly(), monthly(code="T2022-002")
    uow = uow_with(task, elsewhere)
    part = filed_part(uow, task, "2022-03")
    other_task_part = submitted(unit=CO, code="T2022-002", period="2022-03", at=MAY)
    apply(uow, other_task_part)
    lead_report = submitted(period="2022-02", at=MAY)
    apply(uow, lead_report)
    unknown = uuid.uuid4()

    cites = [unknown, part, other_task_part.event_id, lead_report.event_id]
    apply(uow, submitted(period="2022-03", at=MAY, cites=cites))

    consolidated = uow.reports.stored[-1]
    assert consolidated.cites == [part]
    # What was sent stays on record.
    assert consolidated.payload["cites"] == [str(c) for c in cites]


def test_a_co_units_citations_are_not_kept() -> None:
    task = monthly()
    uow = uow_with(task)
    part = filed_part(uow, task, "2022-03")
    apply(uow, submitted(unit=CO, period="2022-04", at=MAY, cites=[part]))
    assert uow.reports.stored[-1].cites == []


def test_reevaluation_announces_the_missing_parts_with_their_due_instants() -> None:
    task = monthly(reported_periods=["2022-01", "2022-02", "2022-03", "2022-04"])
    co_unit(task).reported_periods = ["2022-01", "2022-02"]
    uow = uow_with(task)

    assert reevaluate(uow, task, now=MAY) is True

    assert (task.light, task.light_reasons) == (
        "green",
        [f"配合单位未报送：{CO}（2022年3月、2022年4月）"],
    )
    [event] = uow.outbox.events("task.condition_changed")
    assert event["missing_parts"] == [
        {"unit": CO, "period": "2022-03", "due_at": "2022-04-06T23:59:59.999999+08:00"},
        {"unit": CO, "period": "2022-04", "due_at": "2022-05-05T23:59:59.999999+08:00"},
    ]
    assert task.announced is not None
    assert task.announced["missing_parts"] == event["missing_parts"]
    # The co-unit files March: the condition changed, so it is announced again.
    apply(uow, submitted(unit=CO, period="2022-03", at=MAY + dt.timedelta(hours=1)))
    latest = uow.outbox.events("task.condition_changed")[-1]
    assert [p["period"] for p in latest["missing_parts"]] == ["2022-04"]


def test_a_task_with_no_missing_part_announces_as_before() -> None:
    task = monthly(reported_periods=["2022-01", "2022-02", "2022-03", "2022-04"])
    co_unit(task).reported_periods = ["2022-01", "2022-02", "2022-03", "2022-04"]
    uow = uow_with(task)
    reevaluate(uow, task, now=MAY)
    [event] = uow.outbox.events("task.condition_changed")
    assert event["missing_parts"] == []
    assert task.announced is not None
    assert "missing_parts" not in task.announced
    assert task.light_reasons == []


def test_the_lead_is_not_chased_for_the_parts_it_filed_itself() -> None:
    # The lead's own reports never count as a co-unit's part.
    task = monthly()
    uow = uow_with(task)
    apply(uow, submitted(unit=LEAD, period="2022-03", at=MAY))
    assert co_unit(task).reported_periods == []
