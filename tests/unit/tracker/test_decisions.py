"""The office's queue of pending decisions (usecases/decisions.py) over the fakes."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from services.tracker.auth import Principal
from services.tracker.domain.workflow import RuleViolation
from services.tracker.orm import Report, Task
from services.tracker.usecases import decisions
from services.tracker.usecases import workflow_actions as actions
from shared.vocabulary import DecisionKind

from .fakes import (
    CO,
    LEAD,
    LEADER,
    OTHER,
    OTHER_LEADER,
    START,
    FakeUnitOfWork,
    make_task,
    principal,
)

OFFICE = principal("supervisor")


def at(days: int) -> dt.datetime:
    return START + dt.timedelta(days=days)


def report(uow: FakeUnitOfWork, task: Task, when: dt.datetime, *, role: str = "lead") -> Report:
    stored = Report(
        event_id=uuid.uuid4(),
        task_id=task.id,
        unit_id=1 if role == "lead" else 2,
        role=role,
        period="2022-05",
        percent=50,
        summary="进展",
        payload={},
        submitted_at=when,
        returned_at=None,
        accepted_at=None,
    )
    stored.unit = next(a.unit for a in task.assignments if a.role == role)
    uow.reports.add(stored)
    return stored


def queue() -> FakeUnitOfWork:
    """Tasks in every state the queue distinguishes; what is pending is said per task."""
    review = make_task("Q-REVIEW")  # pending: its newer lead report (day 3), not the older
    returned = make_task("Q-RETURNED", status="returned")
    accepted = make_task("Q-ACCEPTED")
    co_only = make_task("Q-CO-ONLY")
    extension = make_task(
        "Q-EXTENSION",
        pending_extension_due=dt.date(2022, 9, 30),
        pending_extension_asked_at=at(1),
        pending_extension_reason="开工推迟",
    )
    completion = make_task(
        "Q-COMPLETION", status="completion_requested", completion_requested_at=at(2)
    )
    closed = make_task("Q-CLOSED", status="closed", closed_at=at(0))
    others = make_task("Q-OTHERS", lead=(OTHER,), co=(), leaders=(OTHER_LEADER,))
    uow = FakeUnitOfWork()
    for task in (review, returned, accepted, co_only, extension, completion, closed, others):
        uow.tasks.by_code[task.code] = task
    report(uow, review, at(-5))
    report(uow, review, at(3))
    report(uow, returned, at(-4)).returned_at = at(-3)
    report(uow, accepted, at(-6)).accepted_at = at(-2)
    report(uow, co_only, at(-7), role="co")
    report(uow, closed, at(-8))
    report(uow, others, at(4))
    return uow


def listing(uow: FakeUnitOfWork, who: Principal, *, limit: int = 50) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    cursor: str | None = None
    while True:
        page = decisions.pending_decisions(uow, principal=who, cursor=cursor, limit=limit)
        items += [(item.kind.value, item.task_code) for item in page.items]
        assert len(page.items) <= limit
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


ALL = [
    ("extension_request", "Q-EXTENSION"),
    ("completion_request", "Q-COMPLETION"),
    ("report_review", "Q-REVIEW"),
    ("report_review", "Q-OTHERS"),
]


@pytest.mark.parametrize("role", ["supervisor", "admin"])
def test_the_office_sees_everything_pending_oldest_first(role: str) -> None:
    assert listing(queue(), principal(role)) == ALL


def test_a_leader_sees_what_is_pending_on_their_own_tasks() -> None:
    assert listing(queue(), principal("leader", leader=LEADER)) == ALL[:3]
    assert listing(queue(), principal("leader", leader=OTHER_LEADER)) == ALL[3:]
    assert listing(queue(), principal("leader")) == []


@pytest.mark.parametrize(
    "who",
    [principal("unit", unit_name=LEAD), principal("unit", unit_name=CO), principal("operator")],
    ids=["lead_unit", "co_unit", "operator"],
)
def test_units_and_operators_may_not_read_the_queue(who: Principal) -> None:
    with pytest.raises(RuleViolation) as raised:
        decisions.pending_decisions(queue(), principal=who, cursor=None, limit=10)
    assert (raised.value.code, raised.value.http_status) == ("role_not_allowed", 403)


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5])
def test_pages_follow_one_another_without_gaps_or_repeats(limit: int) -> None:
    assert listing(queue(), OFFICE, limit=limit) == ALL


def test_each_item_says_what_to_do_and_how() -> None:
    uow = queue()
    page = decisions.pending_decisions(uow, principal=OFFICE, cursor=None, limit=10)
    by_kind = {item.kind: item for item in page.items if item.task_code != "Q-OTHERS"}
    review = by_kind[DecisionKind.REPORT_REVIEW]
    latest = uow.reports.latest_lead(uow.tasks.by_code["Q-REVIEW"].id)
    assert latest is not None
    assert (review.unit, review.since, review.event_id, review.period) == (
        LEAD,
        at(3),
        latest.event_id,
        "2022-05",
    )
    assert review.task_title == "任务Q-REVIEW"
    assert "接受或退回" in review.todo
    assert [(a.method, a.path) for a in review.actions] == [
        ("POST", f"/v1/tasks/Q-REVIEW/reports/{latest.event_id}/accept"),
        ("POST", "/v1/tasks/Q-REVIEW/returns"),
    ]
    extension = by_kind[DecisionKind.EXTENSION_REQUEST]
    assert (extension.unit, extension.since, extension.requested_due) == (
        LEAD,
        at(1),
        dt.date(2022, 9, 30),
    )
    assert "2022-09-30" in extension.todo
    completion = by_kind[DecisionKind.COMPLETION_REQUEST]
    assert completion.since == at(2)
    assert [a.path for a in completion.actions] == [
        "/v1/tasks/Q-COMPLETION/close",
        "/v1/tasks/Q-COMPLETION/returns",
    ]


@pytest.mark.parametrize("settle", ["accept", "return"])
def test_a_report_leaves_the_queue_when_accepted_or_returned(settle: str) -> None:
    uow = queue()
    task = uow.tasks.by_code["Q-REVIEW"]
    latest = uow.reports.latest_lead(task.id)
    assert latest is not None
    call = actions.accept_report if settle == "accept" else actions.return_report
    call(uow, code=task.code, event_id=latest.event_id, comment="意见", principal=OFFICE, now=at(5))
    assert ("report_review", "Q-REVIEW") not in listing(uow, OFFICE)
    # The unit reports again: the new report awaits review.
    report(uow, task, at(6))
    assert listing(uow, OFFICE)[-1] == ("report_review", "Q-REVIEW")


def test_requests_leave_the_queue_when_decided() -> None:
    uow = queue()
    actions.decide_extension(
        uow, code="Q-EXTENSION", grant=True, comment="", principal=OFFICE, now=at(5)
    )
    actions.close(uow, code="Q-COMPLETION", comment="", principal=OFFICE, now=at(5))
    assert listing(uow, OFFICE) == [("report_review", "Q-REVIEW"), ("report_review", "Q-OTHERS")]


@pytest.mark.parametrize(
    "cursor",
    ["", "not-a-cursor", "W10", "WyIyMDIyLTA1LTIwVDEwOjAwOjAwIiwwLDFd", "eyJhIjoxfQ"],
    ids=["empty", "garbage", "json_not_a_list", "naive_time", "object"],
)
def test_a_cursor_this_service_did_not_issue_is_refused(cursor: str) -> None:
    with pytest.raises(RuleViolation) as raised:
        decisions.pending_decisions(queue(), principal=OFFICE, cursor=cursor, limit=10)
    assert (raised.value.code, raised.value.http_status) == ("invalid_cursor", 422)


def test_a_cursor_round_trips() -> None:
    position = (at(1), 1, 42)
    assert decisions.decode_cursor(decisions.encode_cursor(position)) == position
