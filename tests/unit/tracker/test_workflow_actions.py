"""Workflow actions (退回, 延期, 申请销号, 销号, 重新启用) over fake repositories."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from services.tracker.auth import Principal
from services.tracker.domain.workflow import RuleViolation
from services.tracker.orm import Report, Task
from services.tracker.usecases import workflow_actions as actions

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
    uow_with,
)

NOW = START
CODE = "T2022-001"

PRINCIPALS = {
    "lead": principal("unit", unit_name=LEAD),
    "co": principal("unit", unit_name=CO),
    "unrelated": principal("unit", unit_name=OTHER),
    "supervisor": principal("supervisor"),
    "leader": principal("leader", leader=LEADER),
    "other_leader": principal("leader", leader=OTHER_LEADER),
    "admin": principal("admin"),
    "operator": principal("operator"),
}
INVISIBLE = ("unrelated", "other_leader", "operator")


def lead_report(task: Task, *, at: dt.datetime, period: str | None = "2022-04") -> Report:
    return Report(
        event_id=uuid.uuid4(),
        task_id=task.id,
        unit_id=1,
        role="lead",
        period=period,
        percent=40,
        summary="进展",
        payload={},
        submitted_at=at,
        returned_at=None,
    )


@dataclass(frozen=True)
class Action:
    """One workflow action: a task it is allowed on, how to call it, who may."""

    name: str
    kind: str  # the timeline entry and event action it records
    status: str  # a status it is allowed from
    allowed: str  # the one principal it is allowed to
    refusals: dict[str, str]  # principal -> rule code (403)
    call: Callable[[FakeUnitOfWork, Principal], Task]
    status_after: str
    pending: bool = False  # the task has an extension request waiting


def _return(uow: FakeUnitOfWork, who: Principal) -> Task:
    latest = uow.reports.latest_lead(uow.tasks.by_code[CODE].id)
    event_id = latest.event_id if latest else uuid.uuid4()
    return actions.return_report(
        uow, code=CODE, event_id=event_id, comment=" 请补充数据。 ", principal=who, now=NOW
    )


def _accept(uow: FakeUnitOfWork, who: Principal) -> Task:
    latest = uow.reports.latest_lead(uow.tasks.by_code[CODE].id)
    event_id = latest.event_id if latest else uuid.uuid4()
    return actions.accept_report(
        uow, code=CODE, event_id=event_id, comment=" 内容翔实。 ", principal=who, now=NOW
    )


def _ask_extension(uow: FakeUnitOfWork, who: Principal) -> Task:
    return actions.request_extension(
        uow, code=CODE, new_due=dt.date(2022, 9, 30), reason="开工推迟", principal=who, now=NOW
    )


def _decide(grant: bool) -> Callable[[FakeUnitOfWork, Principal], Task]:
    def call(uow: FakeUnitOfWork, who: Principal) -> Task:
        return actions.decide_extension(
            uow, code=CODE, grant=grant, comment="意见", principal=who, now=NOW
        )

    return call


def _ask_completion(uow: FakeUnitOfWork, who: Principal) -> Task:
    return actions.request_completion(uow, code=CODE, summary="完成。", principal=who, now=NOW)


def _close(uow: FakeUnitOfWork, who: Principal) -> Task:
    return actions.close(uow, code=CODE, comment="核验属实", principal=who, now=NOW)


def _reopen(uow: FakeUnitOfWork, who: Principal) -> Task:
    return actions.reopen(uow, code=CODE, comment="继续推进", principal=who, now=NOW)


def _office(code: str) -> dict[str, str]:
    return {
        "lead": code,
        "co": code,
        "leader": code,
        "admin": "role_without_workflow_rights",
    }


def _lead_unit(co_code: str, other_code: str) -> dict[str, str]:
    return {
        "co": co_code,
        "supervisor": other_code,
        "leader": other_code,
        "admin": "role_without_workflow_rights",
    }


ACTIONS = [
    Action(
        "return_report",
        "report_returned",
        "in_progress",
        "supervisor",
        _office("only_supervisor_returns_reports"),
        _return,
        "returned",
    ),
    Action(
        "accept_report",
        "report_accepted",
        "in_progress",
        "supervisor",
        _office("only_supervisor_accepts_reports"),
        _accept,
        "in_progress",
    ),
    Action(
        "request_extension",
        "extension_requested",
        "in_progress",
        "lead",
        _lead_unit("co_unit_cannot_request_extension", "only_lead_unit_requests_extension"),
        _ask_extension,
        "in_progress",
    ),
    Action(
        "grant_extension",
        "extension_granted",
        "in_progress",
        "supervisor",
        _office("only_supervisor_decides_extensions"),
        _decide(True),
        "in_progress",
        pending=True,
    ),
    Action(
        "refuse_extension",
        "extension_refused",
        "in_progress",
        "supervisor",
        _office("only_supervisor_decides_extensions"),
        _decide(False),
        "in_progress",
        pending=True,
    ),
    Action(
        "request_completion",
        "completion_requested",
        "in_progress",
        "lead",
        _lead_unit("co_unit_cannot_request_completion", "only_lead_unit_requests_completion"),
        _ask_completion,
        "completion_requested",
    ),
    Action(
        "close",
        "closed",
        "completion_requested",
        "supervisor",
        _office("only_supervisor_closes"),
        _close,
        "closed",
    ),
    Action(
        "reopen",
        "reopened",
        "closed",
        "supervisor",
        _office("only_supervisor_reopens"),
        _reopen,
        "in_progress",
    ),
]
BY_NAME = {a.name: a for a in ACTIONS}


def ready(action: Action, **fields: Any) -> FakeUnitOfWork:
    """A unit of work whose task the action is allowed on."""
    state: dict[str, Any] = {"status": action.status}
    if action.status == "completion_requested":
        state["completion_requested_at"] = NOW - dt.timedelta(days=1)
    if action.status == "closed":
        state["closed_at"] = NOW - dt.timedelta(days=1)
    if action.pending:
        state.update(
            pending_extension_due=dt.date(2022, 9, 30),
            pending_extension_asked_at=NOW - dt.timedelta(days=2),
            pending_extension_reason="开工推迟",
        )
    state.update(fields)
    task = make_task(CODE, **state)
    uow = uow_with(task)
    report = lead_report(task, at=NOW - dt.timedelta(days=1))
    uow.reports.add(report)
    task.reported_periods = ["2022-04"]
    return uow


def refused(call: Callable[[], object], code: str, http_status: int) -> RuleViolation:
    with pytest.raises(RuleViolation) as raised:
        call()
    assert (raised.value.code, raised.value.http_status) == (code, http_status)
    assert raised.value.message_zh
    return raised.value


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_the_allowed_actor_acts_and_it_is_recorded_once(action: Action) -> None:
    uow = ready(action)
    who = PRINCIPALS[action.allowed]

    task = action.call(uow, who)

    assert task.status == action.status_after
    assert uow.tasks.locked == [CODE]
    [entry] = [e for e in uow.timeline.entries if e.action == action.kind]
    assert (entry.actor_role, entry.actor_unit, entry.actor_key_id, entry.at) == (
        who.role,
        who.unit,
        who.key_id,
        NOW,
    )
    [event] = uow.outbox.events("task.action_recorded")
    assert (event["action"], event["task_code"], event["actor_role"], event["actor_unit"]) == (
        action.kind,
        CODE,
        who.role,
        who.unit,
    )
    assert event["details"] == entry.details
    assert uow.flushes == 1
    # The light is re-evaluated: a next evaluation is scheduled unless the light is final
    # until the office acts (blue awaiting sign-off, grey once closed).
    final = action.status_after in ("completion_requested", "closed")
    assert (task.next_evaluation_at is None) == final
    assert task.light_changed_at == NOW


@pytest.mark.parametrize("who", sorted(PRINCIPALS))
@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_who_may_act(action: Action, who: str) -> None:
    uow = ready(action)
    caller = PRINCIPALS[who]
    if who == action.allowed:
        action.call(uow, caller)
        return
    if who in INVISIBLE:
        with pytest.raises(actions.TaskNotFound):
            action.call(uow, caller)
    else:
        refused(lambda: action.call(uow, caller), action.refusals[who], 403)
    assert uow.timeline.entries == []
    assert uow.outbox.queued == []
    assert uow.extensions.decided == []


@pytest.mark.parametrize("who", sorted(PRINCIPALS))
def test_an_unknown_task_is_not_found_for_everyone(who: str) -> None:
    uow = uow_with(make_task("T2022-002"))
    with pytest.raises(actions.TaskNotFound):
        _close(uow, PRINCIPALS[who])


CONFLICTS = [
    ("return_report", {"status": "not_started"}, "no_report_to_return"),
    ("return_report", {"status": "returned"}, "report_already_returned"),
    ("return_report", {"status": "closed"}, "task_closed"),
    ("accept_report", {"status": "not_started"}, "no_report_to_accept"),
    ("accept_report", {"status": "returned"}, "report_already_returned"),
    ("accept_report", {"status": "closed"}, "task_closed"),
    (
        "request_extension",
        {"status": "completion_requested"},
        "extension_while_completion_requested",
    ),
    ("request_extension", {"status": "closed"}, "task_closed"),
    ("request_extension", {"due": None}, "extension_without_due_date"),
    ("request_extension", {"due": dt.date(2022, 5, 19)}, "extension_after_due"),
    (
        "request_extension",
        {
            "pending_extension_due": dt.date(2022, 8, 31),
            "pending_extension_asked_at": START - dt.timedelta(days=1),
        },
        "extension_already_pending",
    ),
    ("grant_extension", {"pending_extension_due": None}, "no_pending_extension"),
    ("refuse_extension", {"pending_extension_asked_at": None}, "no_pending_extension"),
    ("grant_extension", {"status": "closed"}, "task_closed"),
    ("refuse_extension", {"status": "closed"}, "task_closed"),
    ("request_completion", {"status": "completion_requested"}, "completion_already_requested"),
    ("request_completion", {"status": "closed"}, "task_closed"),
    ("close", {"status": "closed"}, "task_already_closed"),
    *[
        ("close", {"status": s}, "close_without_completion_request")
        for s in ("not_started", "in_progress", "returned")
    ],
    *[
        ("reopen", {"status": s}, "reopen_requires_closed")
        for s in ("not_started", "in_progress", "returned", "completion_requested")
    ],
]


@pytest.mark.parametrize(("name", "fields", "code"), CONFLICTS)
def test_a_state_that_forbids_the_action_is_a_conflict(
    name: str, fields: dict[str, Any], code: str
) -> None:
    action = BY_NAME[name]
    uow = ready(action, **fields)
    refused(lambda: action.call(uow, PRINCIPALS[action.allowed]), code, 409)
    assert uow.outbox.queued == []
    assert uow.timeline.entries == []


@pytest.mark.parametrize("on_day", [dt.date(2022, 5, 20), dt.date(2022, 6, 30)])
def test_an_extension_may_be_asked_up_to_the_due_date_itself(on_day: dt.date) -> None:
    uow = ready(BY_NAME["request_extension"], due=on_day)
    task = _ask_extension(uow, PRINCIPALS["lead"])
    assert task.pending_extension_due == dt.date(2022, 9, 30)
    assert task.pending_extension_reason == "开工推迟"


@pytest.mark.parametrize("new_due", [dt.date(2022, 6, 30), dt.date(2022, 1, 1)])
def test_an_extension_must_move_the_due_date_later(new_due: dt.date) -> None:
    uow = ready(BY_NAME["request_extension"])
    refused(
        lambda: actions.request_extension(
            uow, code=CODE, new_due=new_due, reason="x", principal=PRINCIPALS["lead"], now=NOW
        ),
        "extension_not_later",
        422,
    )


# -- 退回: only the lead unit's latest report, and its period is owed again ------------------


def test_a_return_sends_back_the_latest_report_and_its_period() -> None:
    uow = ready(BY_NAME["return_report"])
    task = uow.tasks.by_code[CODE]
    latest = uow.reports.stored[0]

    _return(uow, PRINCIPALS["supervisor"])

    assert (latest.returned_at, latest.return_comment) == (NOW, "请补充数据。")
    assert task.reported_periods == []
    assert task.return_comment == "请补充数据。"
    [entry] = uow.timeline.entries[:1]
    assert entry.details == {"event_id": str(latest.event_id), "comment": "请补充数据。"}


@pytest.mark.parametrize("which", ["older", "co_unit", "unknown", "already_returned"])
def test_only_the_latest_lead_report_can_be_returned(which: str) -> None:
    uow = ready(BY_NAME["return_report"])
    task = uow.tasks.by_code[CODE]
    older = lead_report(task, at=NOW - dt.timedelta(days=10), period="2022-03")
    co = lead_report(task, at=NOW - dt.timedelta(hours=1))
    co.role = "co"
    returned = lead_report(task, at=NOW - dt.timedelta(hours=2))
    returned.returned_at = NOW - dt.timedelta(minutes=30)
    for report in (older, co, returned):
        uow.reports.add(report)
    target = {"older": older, "co_unit": co, "already_returned": returned}.get(which)
    event_id = target.event_id if target else uuid.uuid4()

    refused(
        lambda: actions.return_report(
            uow,
            code=CODE,
            event_id=event_id,
            comment="退回",
            principal=PRINCIPALS["supervisor"],
            now=NOW,
        ),
        "only_latest_report_can_be_returned",
        409,
    )
    assert all(r.returned_at is None for r in (older, co)) and task.status == "in_progress"


# -- 接受: only the lead unit's latest report, once; the task's state does not move ----------


def test_accepting_records_it_on_the_report_and_the_timeline() -> None:
    uow = ready(BY_NAME["accept_report"])
    task = uow.tasks.by_code[CODE]
    latest = uow.reports.stored[0]

    _accept(uow, PRINCIPALS["supervisor"])

    assert (latest.accepted_at, latest.accept_comment, latest.returned_at) == (
        NOW,
        "内容翔实。",
        None,
    )
    assert (task.status, task.reported_periods) == ("in_progress", ["2022-04"])
    [entry] = uow.timeline.entries[:1]
    assert entry.details == {"event_id": str(latest.event_id), "comment": "内容翔实。"}


@pytest.mark.parametrize("which", ["older", "co_unit", "unknown"])
def test_only_the_latest_lead_report_can_be_accepted(which: str) -> None:
    uow = ready(BY_NAME["accept_report"])
    task = uow.tasks.by_code[CODE]
    older = lead_report(task, at=NOW - dt.timedelta(days=10), period="2022-03")
    co = lead_report(task, at=NOW - dt.timedelta(hours=1))
    co.role = "co"
    for report in (older, co):
        uow.reports.add(report)
    target = {"older": older, "co_unit": co}.get(which)
    event_id = target.event_id if target else uuid.uuid4()
    refused(
        lambda: actions.accept_report(
            uow,
            code=CODE,
            event_id=event_id,
            comment="",
            principal=PRINCIPALS["supervisor"],
            now=NOW,
        ),
        "only_latest_report_can_be_accepted",
        409,
    )
    assert all(r.accepted_at is None for r in uow.reports.stored)
    assert uow.timeline.entries == [] and uow.outbox.queued == []


def test_accepting_twice_is_refused() -> None:
    uow = ready(BY_NAME["accept_report"])
    _accept(uow, PRINCIPALS["supervisor"])
    queued = len(uow.outbox.queued)
    refused(lambda: _accept(uow, PRINCIPALS["supervisor"]), "report_already_accepted", 409)
    assert len(uow.outbox.queued) == queued


def test_a_return_without_any_lead_report_is_refused() -> None:
    uow = uow_with(make_task(CODE, status="in_progress"))
    refused(
        lambda: _return(uow, PRINCIPALS["supervisor"]), "only_latest_report_can_be_returned", 409
    )


@pytest.mark.parametrize("comment", ["", "   ", "\n"])
def test_a_return_needs_a_comment(comment: str) -> None:
    uow = ready(BY_NAME["return_report"])
    latest = uow.reports.stored[0]
    refused(
        lambda: actions.return_report(
            uow,
            code=CODE,
            event_id=latest.event_id,
            comment=comment,
            principal=PRINCIPALS["supervisor"],
            now=NOW,
        ),
        "return_comment_required",
        422,
    )


def test_a_return_keeps_the_period_of_a_report_that_is_not_returned() -> None:
    uow = ready(BY_NAME["return_report"])
    task = uow.tasks.by_code[CODE]
    task.reported_periods = ["2022-03", "2022-04"]
    _return(uow, PRINCIPALS["supervisor"])
    assert task.reported_periods == ["2022-03"]


# -- extensions: the history is kept, the original due date stays --------------------------


def test_the_extension_history_keeps_every_decision() -> None:
    uow = uow_with(make_task(CODE))
    task = uow.tasks.by_code[CODE]
    lead, office = PRINCIPALS["lead"], PRINCIPALS["supervisor"]

    _ask_extension(uow, lead)
    _decide(False)(uow, office)
    actions.request_extension(
        uow, code=CODE, new_due=dt.date(2022, 8, 31), reason="再议", principal=lead, now=NOW
    )
    _decide(True)(uow, office)

    assert [(d.outcome, d.requested_due) for d in uow.extensions.decided] == [
        ("refused", dt.date(2022, 9, 30)),
        ("granted", dt.date(2022, 8, 31)),
    ]
    assert all(d.task_id == task.id and d.decided_at == NOW for d in uow.extensions.decided)
    assert (task.due_date, task.extended_due_date) == (dt.date(2022, 6, 30), dt.date(2022, 8, 31))
    assert task.pending_extension_due is None
    granted = uow.timeline.entries[
        [e.action for e in uow.timeline.entries].index("extension_granted")
    ]
    assert granted.details == {
        "original_due": "2022-06-30",
        "extended_due": "2022-08-31",
        "comment": "意见",
    }
    # The due date in force changed: announced to the notifier.
    assert uow.outbox.events("task.condition_changed")[-1]["due"] == "2022-08-31"


def test_a_completion_request_withdraws_a_pending_extension() -> None:
    uow = ready(
        BY_NAME["request_completion"],
        pending_extension_due=dt.date(2022, 9, 30),
        pending_extension_asked_at=NOW - dt.timedelta(days=1),
        pending_extension_reason="r",
    )
    task = _ask_completion(uow, PRINCIPALS["lead"])
    [withdrawn] = uow.extensions.decided
    assert (withdrawn.outcome, withdrawn.requested_due, withdrawn.reason) == (
        "withdrawn",
        dt.date(2022, 9, 30),
        "r",
    )
    assert (task.pending_extension_due, task.pending_extension_asked_at) == (None, None)
    assert task.completion_requested_at == NOW


def test_a_refusal_keeps_the_due_date_in_force() -> None:
    uow = ready(BY_NAME["refuse_extension"], extended_due_date=dt.date(2022, 7, 31))
    task = _decide(False)(uow, PRINCIPALS["supervisor"])
    assert task.extended_due_date == dt.date(2022, 7, 31)
    assert uow.extensions.decided[0].outcome == "refused"


# -- the directory entry intake reads follows the status ------------------------------------


@pytest.mark.parametrize(
    ("name", "republished", "accepting"),
    [
        ("return_report", True, True),
        ("request_extension", False, None),
        ("grant_extension", False, None),
        ("refuse_extension", False, None),
        ("request_completion", True, False),
        ("close", True, False),
        ("reopen", True, True),
    ],
)
def test_the_directory_entry_is_republished_when_the_status_changes(
    name: str, republished: bool, accepting: bool | None
) -> None:
    action = BY_NAME[name]
    uow = ready(action)
    action.call(uow, PRINCIPALS[action.allowed])
    entries = uow.outbox.directory()
    assert len(entries) == (1 if republished else 0)
    if republished:
        [entry] = entries
        assert entry.key == f"task:{CODE}"
        assert entry.event is not None
        assert entry.event["accepting_reports"] is accepting
        assert (entry.event["lead_units"], entry.event["co_units"]) == ([LEAD], [CO])


# -- the light follows the workflow ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "light"),
    [("request_completion", "blue"), ("close", "grey"), ("reopen", None)],
)
def test_the_light_follows_the_status_and_is_announced(name: str, light: str | None) -> None:
    action = BY_NAME[name]
    uow = ready(
        action,
        light="blue" if name == "close" else "grey" if name == "reopen" else "green",
        light_changed_at=NOW - dt.timedelta(days=1),
    )
    task = action.call(uow, PRINCIPALS[action.allowed])
    [event] = uow.outbox.events("task.condition_changed")
    assert event["status"] == task.status
    if light is not None:
        assert task.light == event["light"] == light
        assert uow.timeline.kinds()[-1] == "light_changed"
    else:
        assert task.light not in ("blue", "grey")


def test_actions_at_a_naive_time_are_refused() -> None:
    uow = ready(BY_NAME["close"])
    with pytest.raises(ValueError):
        actions.close(
            uow,
            code=CODE,
            comment="",
            principal=PRINCIPALS["supervisor"],
            now=dt.datetime(2022, 5, 20, 10),  # noqa: DTZ001
        )
