"""Task workflow: who may move a task between states, and when.

States: not_started → in_progress → completion_requested → closed (销号), plus returned (退回).
The office reviews the latest report: it returns it (退回) or accepts it (接受, no state change).
Every transition is a pure function from one `WorkflowState` to the next. A refused
transition raises `RuleViolation` naming the rule: 403 when the actor's role may never do
it, 409 when the task's state forbids it now, 422 when the request itself is malformed.
Role is checked before state, so a co-unit learns it lacks the right, not the task's state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from shared.clock import require_aware, shanghai_date
from shared.vocabulary import TaskStatus


class Role(StrEnum):
    """The actor's role with respect to this particular task."""

    LEAD_UNIT = "lead_unit"
    CO_UNIT = "co_unit"
    SUPERVISOR = "supervisor"
    SUPERVISING_LEADER = "supervising_leader"


# The name is part of the API the tracker's entrypoints code against, hence no Error suffix.
class RuleViolation(Exception):
    """A workflow rule refused the transition; `code` names the rule for the API body."""

    def __init__(self, code: str, message_zh: str, http_status: int) -> None:
        super().__init__(f"{code}: {message_zh}")
        self.code = code
        self.message_zh = message_zh
        self.http_status = http_status

    def to_body(self) -> dict[str, str]:
        """JSON body for the HTTP error response."""
        return {"code": self.code, "message": self.message_zh}


FORBIDDEN = 403
CONFLICT = 409
UNPROCESSABLE = 422


class ExtensionOutcome(StrEnum):
    """How an extension request ended."""

    GRANTED = "granted"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class ExtensionRequest:
    """A lead unit's pending request to move the due date."""

    requested_due: date
    asked_at: datetime
    reason_zh: str = ""


@dataclass(frozen=True)
class ExtensionDecision:
    """An extension request and how it ended, kept on record."""

    request: ExtensionRequest
    outcome: ExtensionOutcome
    decided_at: datetime
    comment_zh: str = ""


@dataclass(frozen=True, kw_only=True)
class WorkflowState:
    """The workflow-relevant part of a task; `due_date` is the original and never changes."""

    status: TaskStatus = TaskStatus.NOT_STARTED
    due_date: date | None = None
    extended_due: date | None = None
    pending_extension: ExtensionRequest | None = None
    extension_history: tuple[ExtensionDecision, ...] = ()
    return_comment_zh: str | None = None
    completion_requested_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def effective_due(self) -> date | None:
        """The due date in force: the granted extension if any, else the original."""
        return self.extended_due if self.extended_due is not None else self.due_date


def _forbid(code: str, message_zh: str) -> RuleViolation:
    return RuleViolation(code, message_zh, FORBIDDEN)


def _conflict(code: str, message_zh: str) -> RuleViolation:
    return RuleViolation(code, message_zh, CONFLICT)


def _refuse_if_closed(state: WorkflowState) -> None:
    if state.status is TaskStatus.CLOSED:
        raise _conflict("task_closed", "任务已销号，如需继续办理请由督查室重新启用")


def require_supervisor(actor: Role | None, code: str, message_zh: str) -> None:
    """Refuse (403 naming `code`) any actor but the supervising office."""
    if actor is not Role.SUPERVISOR:
        raise _forbid(code, message_zh)


def require_lead_unit(
    actor: Role | None, *, co_unit_code: str, other_code: str, what_zh: str
) -> None:
    """Refuse (403) any actor but the lead unit; a co-unit gets `co_unit_code`."""
    # A co-unit gets its own code: it is the one role that might plausibly expect the right.
    if actor is Role.CO_UNIT:
        raise _forbid(co_unit_code, f"配合单位不能{what_zh}，请由牵头单位办理")
    if actor is not Role.LEAD_UNIT:
        raise _forbid(other_code, f"只有牵头单位可以{what_zh}")


def submit_report(state: WorkflowState, *, actor: Role, at: datetime) -> WorkflowState:
    """A unit files a progress report; the lead unit's consolidated report moves the task."""
    require_aware(at, "at")
    if actor not in (Role.LEAD_UNIT, Role.CO_UNIT):
        raise _forbid("only_units_submit_reports", "只有责任单位可以报送进展")
    _refuse_if_closed(state)
    if state.status is TaskStatus.COMPLETION_REQUESTED:
        raise _conflict(
            "report_while_completion_requested", "任务已申请销号，待督查室核验，暂不能报送进展"
        )
    if actor is Role.CO_UNIT:
        # A co-unit files its part (recorded as such); only the consolidated report moves it.
        return state
    return replace(state, status=TaskStatus.IN_PROGRESS, return_comment_zh=None)


def return_report(
    state: WorkflowState, *, actor: Role, at: datetime, comment_zh: str
) -> WorkflowState:
    """The office sends the latest report (or completion request) back; the unit must resubmit."""
    require_aware(at, "at")
    require_supervisor(actor, "only_supervisor_returns_reports", "只有督查室可以退回报告")
    _refuse_if_closed(state)
    if state.status is TaskStatus.NOT_STARTED:
        raise _conflict("no_report_to_return", "任务尚未报送进展，没有可退回的报告")
    if state.status is TaskStatus.RETURNED:
        raise _conflict("report_already_returned", "报告已退回，待责任单位重新报送")
    if not comment_zh.strip():
        raise RuleViolation("return_comment_required", "退回报告须填写退回意见", UNPROCESSABLE)
    return replace(
        state,
        status=TaskStatus.RETURNED,
        return_comment_zh=comment_zh.strip(),
        completion_requested_at=None,
    )


def accept_report(state: WorkflowState, *, actor: Role, at: datetime) -> WorkflowState:
    """The office accepts (接受) the latest report: it leaves the review queue; nothing moves."""
    require_aware(at, "at")
    require_supervisor(actor, "only_supervisor_accepts_reports", "只有督查室可以接受报告")
    _refuse_if_closed(state)
    if state.status is TaskStatus.NOT_STARTED:
        raise _conflict("no_report_to_accept", "任务尚未报送进展，没有可接受的报告")
    if state.status is TaskStatus.RETURNED:
        raise _conflict("report_already_returned", "报告已退回，待责任单位重新报送")
    return state


def request_extension(
    state: WorkflowState,
    *,
    actor: Role,
    new_due: date,
    asked_at: datetime,
    reason_zh: str = "",
) -> WorkflowState:
    """The lead unit asks, on or before the due date in force, to move it to `new_due`."""
    require_aware(asked_at, "asked_at")
    require_lead_unit(
        actor,
        co_unit_code="co_unit_cannot_request_extension",
        other_code="only_lead_unit_requests_extension",
        what_zh="申请延期",
    )
    _refuse_if_closed(state)
    if state.status is TaskStatus.COMPLETION_REQUESTED:
        raise _conflict("extension_while_completion_requested", "任务已申请销号，不能再申请延期")
    due = state.effective_due
    if due is None:
        raise _conflict("extension_without_due_date", "任务没有完成时限，无需申请延期")
    # The due date itself is still on time (deadlines end at 24:00 Asia/Shanghai).
    if shanghai_date(asked_at) > due:
        raise _conflict(
            "extension_after_due",
            f"延期须在完成时限（{due.isoformat()}）前提出，任务逾期后不能申请延期",
        )
    if state.pending_extension is not None:
        raise _conflict("extension_already_pending", "已有延期申请待督查室审批")
    if new_due <= due:
        raise RuleViolation(
            "extension_not_later",
            f"申请的新时限须晚于现行完成时限（{due.isoformat()}）",
            UNPROCESSABLE,
        )
    return replace(
        state,
        pending_extension=ExtensionRequest(
            requested_due=new_due, asked_at=asked_at, reason_zh=reason_zh.strip()
        ),
    )


def _decide_extension(
    state: WorkflowState,
    *,
    actor: Role,
    decided_at: datetime,
    comment_zh: str,
    outcome: ExtensionOutcome,
) -> WorkflowState:
    require_aware(decided_at, "decided_at")
    require_supervisor(actor, "only_supervisor_decides_extensions", "只有督查室可以审批延期")
    _refuse_if_closed(state)
    request = state.pending_extension
    if request is None:
        raise _conflict("no_pending_extension", "没有待审批的延期申请")
    decision = ExtensionDecision(
        request=request, outcome=outcome, decided_at=decided_at, comment_zh=comment_zh.strip()
    )
    return replace(
        state,
        pending_extension=None,
        extended_due=(
            request.requested_due if outcome is ExtensionOutcome.GRANTED else state.extended_due
        ),
        extension_history=(*state.extension_history, decision),
    )


def grant_extension(
    state: WorkflowState, *, actor: Role, decided_at: datetime, comment_zh: str = ""
) -> WorkflowState:
    """The office grants the pending extension; the original due date stays on record."""
    # Granting after the due date is fine: the rule is on when it was asked, not decided.
    return _decide_extension(
        state,
        actor=actor,
        decided_at=decided_at,
        comment_zh=comment_zh,
        outcome=ExtensionOutcome.GRANTED,
    )


def refuse_extension(
    state: WorkflowState, *, actor: Role, decided_at: datetime, comment_zh: str = ""
) -> WorkflowState:
    """The office refuses the pending extension; the due date in force is unchanged."""
    return _decide_extension(
        state,
        actor=actor,
        decided_at=decided_at,
        comment_zh=comment_zh,
        outcome=ExtensionOutcome.REFUSED,
    )


def request_completion(state: WorkflowState, *, actor: Role, at: datetime) -> WorkflowState:
    """The lead unit reports the task complete and asks the office to close it (申请销号)."""
    require_aware(at, "at")
    require_lead_unit(
        actor,
        co_unit_code="co_unit_cannot_request_completion",
        other_code="only_lead_unit_requests_completion",
        what_zh="申请销号",
    )
    _refuse_if_closed(state)
    if state.status is TaskStatus.COMPLETION_REQUESTED:
        raise _conflict("completion_already_requested", "任务已申请销号，待督查室核验")
    history = state.extension_history
    if state.pending_extension is not None:
        # A task reported complete no longer needs more time; keep the request on record.
        history = (
            *history,
            ExtensionDecision(
                request=state.pending_extension,
                outcome=ExtensionOutcome.WITHDRAWN,
                decided_at=at,
                comment_zh="申请销号，延期申请自动撤回",
            ),
        )
    return replace(
        state,
        status=TaskStatus.COMPLETION_REQUESTED,
        completion_requested_at=at,
        pending_extension=None,
        extension_history=history,
        return_comment_zh=None,
    )


def close(state: WorkflowState, *, actor: Role, at: datetime) -> WorkflowState:
    """The office verifies a completion request and closes the task (销号)."""
    require_aware(at, "at")
    require_supervisor(actor, "only_supervisor_closes", "只有督查室可以销号")
    if state.status is TaskStatus.CLOSED:
        raise _conflict("task_already_closed", "任务已销号")
    if state.status is not TaskStatus.COMPLETION_REQUESTED:
        raise _conflict("close_without_completion_request", "牵头单位尚未申请销号，不能销号")
    return replace(state, status=TaskStatus.CLOSED, closed_at=at)


def reopen(state: WorkflowState, *, actor: Role, at: datetime) -> WorkflowState:
    """The office reopens a closed task; it goes back to in progress."""
    require_aware(at, "at")
    require_supervisor(actor, "only_supervisor_reopens", "只有督查室可以重新启用任务")
    if state.status is not TaskStatus.CLOSED:
        raise _conflict("reopen_requires_closed", "只有已销号的任务可以重新启用")
    return replace(
        state, status=TaskStatus.IN_PROGRESS, closed_at=None, completion_requested_at=None
    )
