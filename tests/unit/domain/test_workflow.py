"""Workflow transitions: every allowed move and every refusal, with its rule code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime

import pytest

from services.tracker.domain.workflow import (
    ExtensionOutcome,
    ExtensionRequest,
    Role,
    RuleViolation,
    WorkflowState,
    accept_report,
    close,
    grant_extension,
    refuse_extension,
    reopen,
    request_completion,
    request_extension,
    return_report,
    submit_report,
)
from shared.clock import NaiveDatetimeError
from shared.vocabulary import TaskStatus

from ._support import sh, utc

S = TaskStatus
AT = sh(2022, 6, 1, 10)
DUE = date(2022, 12, 31)
OPEN_STATES = [S.NOT_STARTED, S.IN_PROGRESS, S.RETURNED]
NON_SUPERVISORS = [Role.LEAD_UNIT, Role.CO_UNIT, Role.SUPERVISING_LEADER]


def state(status: TaskStatus = S.IN_PROGRESS, **overrides: object) -> WorkflowState:
    return replace(WorkflowState(status=status, due_date=DUE), **overrides)  # type: ignore[arg-type]


def pending(requested: date = date(2023, 3, 31)) -> ExtensionRequest:
    return ExtensionRequest(
        requested_due=requested, asked_at=sh(2022, 12, 1), reason_zh="征迁未完成"
    )


def refused(action: Callable[[], object], code: str, http_status: int) -> RuleViolation:
    with pytest.raises(RuleViolation) as caught:
        action()
    assert caught.value.code == code
    assert caught.value.http_status == http_status
    assert caught.value.message_zh
    return caught.value


def test_status_labels() -> None:
    assert [s.label_zh for s in S] == ["未启动", "推进中", "已退回", "申请销号", "已销号"]


def test_rule_violation_carries_an_api_body() -> None:
    error = RuleViolation("close_without_completion_request", "牵头单位尚未申请销号，不能销号", 409)
    assert error.to_body() == {
        "code": "close_without_completion_request",
        "message": "牵头单位尚未申请销号，不能销号",
    }
    assert str(error).startswith("close_without_completion_request: ")


# --- submit_report -----------------------------------------------------------------------


@pytest.mark.parametrize("status", OPEN_STATES)
def test_lead_unit_report_puts_the_task_in_progress(status: TaskStatus) -> None:
    after = submit_report(state(status, return_comment_zh="数据不实"), actor=Role.LEAD_UNIT, at=AT)
    assert after.status is S.IN_PROGRESS
    assert after.return_comment_zh is None


@pytest.mark.parametrize("status", OPEN_STATES)
def test_co_unit_report_leaves_the_task_state_alone(status: TaskStatus) -> None:
    before = state(status)
    assert submit_report(before, actor=Role.CO_UNIT, at=AT) == before


@pytest.mark.parametrize("actor", [Role.SUPERVISOR, Role.SUPERVISING_LEADER])
def test_only_units_submit_reports(actor: Role) -> None:
    refused(lambda: submit_report(state(), actor=actor, at=AT), "only_units_submit_reports", 403)


@pytest.mark.parametrize("actor", [Role.LEAD_UNIT, Role.CO_UNIT])
def test_no_reports_on_closed_or_awaiting_sign_off(actor: Role) -> None:
    refused(lambda: submit_report(state(S.CLOSED), actor=actor, at=AT), "task_closed", 409)
    refused(
        lambda: submit_report(state(S.COMPLETION_REQUESTED), actor=actor, at=AT),
        "report_while_completion_requested",
        409,
    )


# --- accept_report -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [S.IN_PROGRESS, S.COMPLETION_REQUESTED])
def test_supervisor_accepts_a_report_and_nothing_else_moves(status: TaskStatus) -> None:
    before = state(status, completion_requested_at=AT if status is S.COMPLETION_REQUESTED else None)
    assert accept_report(before, actor=Role.SUPERVISOR, at=AT) == before


@pytest.mark.parametrize("actor", NON_SUPERVISORS)
def test_only_supervisor_accepts_reports(actor: Role) -> None:
    refused(
        lambda: accept_report(state(), actor=actor, at=AT), "only_supervisor_accepts_reports", 403
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (S.NOT_STARTED, "no_report_to_accept"),
        (S.RETURNED, "report_already_returned"),
        (S.CLOSED, "task_closed"),
    ],
)
def test_accepting_refused_by_state(status: TaskStatus, code: str) -> None:
    refused(lambda: accept_report(state(status), actor=Role.SUPERVISOR, at=AT), code, 409)


def test_accepting_needs_an_aware_instant() -> None:
    with pytest.raises(NaiveDatetimeError):
        accept_report(state(), actor=Role.SUPERVISOR, at=datetime(2022, 6, 1, 10))  # noqa: DTZ001


# --- return_report -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [S.IN_PROGRESS, S.COMPLETION_REQUESTED])
def test_supervisor_returns_a_report_with_a_comment(status: TaskStatus) -> None:
    before = state(status, completion_requested_at=AT if status is S.COMPLETION_REQUESTED else None)
    after = return_report(before, actor=Role.SUPERVISOR, at=AT, comment_zh="  缺少量化数据 ")
    assert after.status is S.RETURNED
    assert after.return_comment_zh == "缺少量化数据"
    assert after.completion_requested_at is None


@pytest.mark.parametrize("actor", NON_SUPERVISORS)
def test_only_supervisor_returns_reports(actor: Role) -> None:
    refused(
        lambda: return_report(state(), actor=actor, at=AT, comment_zh="x"),
        "only_supervisor_returns_reports",
        403,
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (S.NOT_STARTED, "no_report_to_return"),
        (S.RETURNED, "report_already_returned"),
        (S.CLOSED, "task_closed"),
    ],
)
def test_return_refused_by_state(status: TaskStatus, code: str) -> None:
    refused(
        lambda: return_report(state(status), actor=Role.SUPERVISOR, at=AT, comment_zh="x"),
        code,
        409,
    )


def test_return_needs_a_comment() -> None:
    refused(
        lambda: return_report(state(), actor=Role.SUPERVISOR, at=AT, comment_zh="  "),
        "return_comment_required",
        422,
    )


# --- extensions --------------------------------------------------------------------------


@pytest.mark.parametrize("status", OPEN_STATES)
def test_lead_unit_requests_an_extension_before_the_due_date(status: TaskStatus) -> None:
    after = request_extension(
        state(status),
        actor=Role.LEAD_UNIT,
        new_due=date(2023, 3, 31),
        asked_at=AT,
        reason_zh="征迁",
    )
    assert after.pending_extension == ExtensionRequest(date(2023, 3, 31), AT, "征迁")
    assert after.status is status
    assert after.effective_due == DUE


@pytest.mark.parametrize(
    ("asked_at", "allowed"),
    [
        (sh(2022, 12, 31, 23, 59), True),
        (utc(2022, 12, 31, 15, 59, 59), True),
        (utc(2022, 12, 31, 16, 0, 0), False),
        (sh(2023, 1, 1, 0, 0), False),
        (sh(2023, 2, 1), False),
    ],
)
def test_extension_must_be_asked_by_the_end_of_the_due_date(
    asked_at: datetime, allowed: bool
) -> None:
    def ask() -> WorkflowState:
        return request_extension(
            state(), actor=Role.LEAD_UNIT, new_due=date(2023, 3, 31), asked_at=asked_at
        )

    if allowed:
        assert ask().pending_extension is not None
    else:
        error = refused(ask, "extension_after_due", 409)
        assert "2022-12-31" in error.message_zh


def test_a_second_extension_is_measured_against_the_extended_date() -> None:
    extended = state(extended_due=date(2023, 3, 31))
    after = request_extension(
        extended, actor=Role.LEAD_UNIT, new_due=date(2023, 6, 30), asked_at=sh(2023, 3, 31, 22)
    )
    assert after.pending_extension is not None
    refused(
        lambda: request_extension(
            extended, actor=Role.LEAD_UNIT, new_due=date(2023, 6, 30), asked_at=sh(2023, 4, 1)
        ),
        "extension_after_due",
        409,
    )


@pytest.mark.parametrize(
    ("actor", "code"),
    [
        (Role.CO_UNIT, "co_unit_cannot_request_extension"),
        (Role.SUPERVISOR, "only_lead_unit_requests_extension"),
        (Role.SUPERVISING_LEADER, "only_lead_unit_requests_extension"),
    ],
)
def test_only_the_lead_unit_requests_extensions(actor: Role, code: str) -> None:
    refused(
        lambda: request_extension(state(), actor=actor, new_due=date(2023, 3, 31), asked_at=AT),
        code,
        403,
    )


@pytest.mark.parametrize(
    ("before", "new_due", "code", "http_status"),
    [
        (state(S.CLOSED), date(2023, 3, 31), "task_closed", 409),
        (
            state(S.COMPLETION_REQUESTED),
            date(2023, 3, 31),
            "extension_while_completion_requested",
            409,
        ),
        (state(due_date=None), date(2023, 3, 31), "extension_without_due_date", 409),
        (state(pending_extension=pending()), date(2023, 3, 31), "extension_already_pending", 409),
        (state(), DUE, "extension_not_later", 422),
        (state(), date(2022, 11, 30), "extension_not_later", 422),
    ],
)
def test_extension_requests_refused(
    before: WorkflowState, new_due: date, code: str, http_status: int
) -> None:
    refused(
        lambda: request_extension(before, actor=Role.LEAD_UNIT, new_due=new_due, asked_at=AT),
        code,
        http_status,
    )


@pytest.mark.parametrize("decided_at", [sh(2022, 12, 20), sh(2023, 1, 10)])
def test_granting_moves_the_due_date_and_keeps_the_original(decided_at: datetime) -> None:
    after = grant_extension(
        state(pending_extension=pending()),
        actor=Role.SUPERVISOR,
        decided_at=decided_at,
        comment_zh="同意",
    )
    assert after.due_date == DUE
    assert after.extended_due == date(2023, 3, 31)
    assert after.effective_due == date(2023, 3, 31)
    assert after.pending_extension is None
    (decision,) = after.extension_history
    assert decision.outcome is ExtensionOutcome.GRANTED
    assert decision.request == pending()
    assert (decision.decided_at, decision.comment_zh) == (decided_at, "同意")


def test_refusing_keeps_the_due_date() -> None:
    before = state(pending_extension=pending(), extended_due=date(2023, 1, 31))
    after = refuse_extension(before, actor=Role.SUPERVISOR, decided_at=AT, comment_zh="理由不充分")
    assert after.extended_due == date(2023, 1, 31)
    assert after.due_date == DUE
    assert after.pending_extension is None
    assert [d.outcome for d in after.extension_history] == [ExtensionOutcome.REFUSED]


@pytest.mark.parametrize("decide", [grant_extension, refuse_extension])
@pytest.mark.parametrize("actor", NON_SUPERVISORS)
def test_only_supervisor_decides_extensions(
    decide: Callable[..., WorkflowState], actor: Role
) -> None:
    refused(
        lambda: decide(state(pending_extension=pending()), actor=actor, decided_at=AT),
        "only_supervisor_decides_extensions",
        403,
    )


@pytest.mark.parametrize("decide", [grant_extension, refuse_extension])
def test_deciding_needs_a_pending_request(decide: Callable[..., WorkflowState]) -> None:
    refused(
        lambda: decide(state(), actor=Role.SUPERVISOR, decided_at=AT), "no_pending_extension", 409
    )
    refused(
        lambda: decide(
            state(S.CLOSED, pending_extension=pending()), actor=Role.SUPERVISOR, decided_at=AT
        ),
        "task_closed",
        409,
    )


# --- completion, close, reopen -----------------------------------------------------------


@pytest.mark.parametrize("status", OPEN_STATES)
def test_lead_unit_requests_completion(status: TaskStatus) -> None:
    after = request_completion(state(status), actor=Role.LEAD_UNIT, at=AT)
    assert after.status is S.COMPLETION_REQUESTED
    assert after.completion_requested_at == AT


def test_completion_request_withdraws_a_pending_extension() -> None:
    after = request_completion(state(pending_extension=pending()), actor=Role.LEAD_UNIT, at=AT)
    assert after.pending_extension is None
    assert [d.outcome for d in after.extension_history] == [ExtensionOutcome.WITHDRAWN]


@pytest.mark.parametrize(
    ("actor", "code"),
    [
        (Role.CO_UNIT, "co_unit_cannot_request_completion"),
        (Role.SUPERVISOR, "only_lead_unit_requests_completion"),
        (Role.SUPERVISING_LEADER, "only_lead_unit_requests_completion"),
    ],
)
def test_only_the_lead_unit_requests_completion(actor: Role, code: str) -> None:
    refused(lambda: request_completion(state(), actor=actor, at=AT), code, 403)


def test_role_is_checked_before_state() -> None:
    refused(
        lambda: request_completion(state(S.CLOSED), actor=Role.CO_UNIT, at=AT),
        "co_unit_cannot_request_completion",
        403,
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [(S.COMPLETION_REQUESTED, "completion_already_requested"), (S.CLOSED, "task_closed")],
)
def test_completion_request_refused_by_state(status: TaskStatus, code: str) -> None:
    refused(lambda: request_completion(state(status), actor=Role.LEAD_UNIT, at=AT), code, 409)


def test_supervisor_closes_a_task_awaiting_sign_off() -> None:
    after = close(state(S.COMPLETION_REQUESTED), actor=Role.SUPERVISOR, at=AT)
    assert (after.status, after.closed_at) == (S.CLOSED, AT)


@pytest.mark.parametrize("status", OPEN_STATES)
def test_closing_a_task_never_reported_complete_is_refused(status: TaskStatus) -> None:
    refused(
        lambda: close(state(status), actor=Role.SUPERVISOR, at=AT),
        "close_without_completion_request",
        409,
    )


def test_closing_twice_is_refused() -> None:
    refused(
        lambda: close(state(S.CLOSED), actor=Role.SUPERVISOR, at=AT), "task_already_closed", 409
    )


@pytest.mark.parametrize("actor", NON_SUPERVISORS)
def test_only_supervisor_closes(actor: Role) -> None:
    refused(
        lambda: close(state(S.COMPLETION_REQUESTED), actor=actor, at=AT),
        "only_supervisor_closes",
        403,
    )


def test_supervisor_reopens_a_closed_task() -> None:
    after = reopen(
        state(S.CLOSED, closed_at=AT, completion_requested_at=AT), actor=Role.SUPERVISOR, at=AT
    )
    assert after.status is S.IN_PROGRESS
    assert (after.closed_at, after.completion_requested_at) == (None, None)


@pytest.mark.parametrize("status", [*OPEN_STATES, S.COMPLETION_REQUESTED])
def test_only_closed_tasks_reopen(status: TaskStatus) -> None:
    refused(
        lambda: reopen(state(status), actor=Role.SUPERVISOR, at=AT), "reopen_requires_closed", 409
    )


@pytest.mark.parametrize("actor", NON_SUPERVISORS)
def test_only_supervisor_reopens(actor: Role) -> None:
    refused(lambda: reopen(state(S.CLOSED), actor=actor, at=AT), "only_supervisor_reopens", 403)


# --- datetimes and a whole life ----------------------------------------------------------


def test_naive_datetimes_are_rejected_by_every_transition() -> None:
    naive = datetime(2022, 6, 1)  # noqa: DTZ001
    calls: list[Callable[[], object]] = [
        lambda: submit_report(state(), actor=Role.LEAD_UNIT, at=naive),
        lambda: return_report(state(), actor=Role.SUPERVISOR, at=naive, comment_zh="x"),
        lambda: request_extension(
            state(), actor=Role.LEAD_UNIT, new_due=date(2023, 1, 31), asked_at=naive
        ),
        lambda: grant_extension(
            state(pending_extension=pending()), actor=Role.SUPERVISOR, decided_at=naive
        ),
        lambda: refuse_extension(
            state(pending_extension=pending()), actor=Role.SUPERVISOR, decided_at=naive
        ),
        lambda: request_completion(state(), actor=Role.LEAD_UNIT, at=naive),
        lambda: close(state(S.COMPLETION_REQUESTED), actor=Role.SUPERVISOR, at=naive),
        lambda: reopen(state(S.CLOSED), actor=Role.SUPERVISOR, at=naive),
    ]
    for call in calls:
        with pytest.raises(NaiveDatetimeError):
            call()


def test_a_task_from_start_to_reopening() -> None:
    task = WorkflowState(due_date=DUE)
    task = submit_report(task, actor=Role.LEAD_UNIT, at=sh(2022, 2, 5))
    task = return_report(task, actor=Role.SUPERVISOR, at=sh(2022, 2, 7), comment_zh="请补充数据")
    assert task.status is S.RETURNED
    task = submit_report(task, actor=Role.LEAD_UNIT, at=sh(2022, 2, 9))
    task = request_extension(
        task, actor=Role.LEAD_UNIT, new_due=date(2023, 3, 31), asked_at=sh(2022, 12, 31, 23, 59)
    )
    task = grant_extension(task, actor=Role.SUPERVISOR, decided_at=sh(2023, 1, 4))
    task = request_completion(task, actor=Role.LEAD_UNIT, at=sh(2023, 3, 20))
    task = close(task, actor=Role.SUPERVISOR, at=sh(2023, 3, 25))
    assert (task.status, task.due_date, task.extended_due) == (S.CLOSED, DUE, date(2023, 3, 31))
    task = reopen(task, actor=Role.SUPERVISOR, at=sh(2023, 4, 1))
    assert task.status is S.IN_PROGRESS
