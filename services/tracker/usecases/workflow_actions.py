"""Workflow actions on a task: the pure rules decide, this module loads, records and announces.

Each function works in the caller's unit of work (the request owns the transaction), writes
an audit record on the timeline, emits a `task.action_recorded` event through the outbox, and
lets the light be re-evaluated, which announces any condition change.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from services.tracker import access
from services.tracker.auth import Principal
from services.tracker.domain import workflow as rules
from services.tracker.domain.workflow import Role, RuleViolation, WorkflowState
from services.tracker.orm import ExtensionDecision, Task, TaskAction
from services.tracker.usecases.directory import publish_assignment
from services.tracker.usecases.evaluation import reevaluate
from services.tracker.usecases.ports import UnitOfWork
from shared import topics
from shared.events import TaskActionRecorded, new_event_id
from shared.vocabulary import TaskStatus


class TaskNotFound(LookupError):
    """No such task, or one the caller may not see (they look the same on purpose)."""


def load_for_action(uow: UnitOfWork, *, code: str, principal: Principal) -> tuple[Task, Role]:
    """Lock the task for this transaction, then decide; 404 for the unknown and the invisible.

    The caller's role and every rule are checked on the locked row: of two decisions on one
    task at once, the second waits and then sees what the first did.
    """
    task = uow.tasks.get_for_update(code)
    if task is None or not access.may_see(principal, task):
        raise TaskNotFound(code)
    role = access.role_towards(principal, task)
    if role is None:
        raise RuleViolation("role_without_workflow_rights", "该角色不能办理任务流程", 403)
    return task, role


def state_of(task: Task) -> WorkflowState:
    """The workflow-relevant part of a stored task."""
    pending = None
    if task.pending_extension_due is not None and task.pending_extension_asked_at is not None:
        pending = rules.ExtensionRequest(
            requested_due=task.pending_extension_due,
            asked_at=task.pending_extension_asked_at,
            reason_zh=task.pending_extension_reason or "",
        )
    return WorkflowState(
        status=TaskStatus(task.status),
        due_date=task.due_date,
        extended_due=task.extended_due_date,
        pending_extension=pending,
        return_comment_zh=task.return_comment,
        completion_requested_at=task.completion_requested_at,
        closed_at=task.closed_at,
    )


def _store(
    uow: UnitOfWork, task: Task, before: WorkflowState, after: WorkflowState, now: dt.datetime
) -> None:
    status_before = task.status
    task.status = after.status.value
    task.extended_due_date = after.extended_due
    task.return_comment = after.return_comment_zh
    task.completion_requested_at = after.completion_requested_at
    task.closed_at = after.closed_at
    request = after.pending_extension
    task.pending_extension_due = request.requested_due if request else None
    task.pending_extension_asked_at = request.asked_at if request else None
    task.pending_extension_reason = request.reason_zh if request else None
    for decision in after.extension_history[len(before.extension_history) :]:
        uow.extensions.add(
            ExtensionDecision(
                task_id=task.id,
                requested_due=decision.request.requested_due,
                asked_at=decision.request.asked_at,
                reason=decision.request.reason_zh,
                outcome=decision.outcome.value,
                decided_at=decision.decided_at,
                comment=decision.comment_zh,
            )
        )
    if status_before != task.status:
        # Intake learns at once whether the task still accepts reports.
        publish_assignment(uow.outbox, task, now=now)


def _record(
    uow: UnitOfWork,
    task: Task,
    *,
    action: str,
    principal: Principal,
    now: dt.datetime,
    details: dict[str, Any],
) -> None:
    uow.timeline.add(
        TaskAction(
            task_id=task.id,
            action=action,
            actor_role=principal.role,
            actor_unit=principal.unit,
            actor_key_id=principal.key_id,
            at=now,
            details=details,
        )
    )
    uow.outbox.add(
        topic=topics.TASK_EVENTS,
        key=task.code,
        event=TaskActionRecorded(
            event_id=new_event_id(),
            occurred_at=now,
            task_code=task.code,
            action=action,
            actor_role=principal.role,
            actor_unit=principal.unit,
            details=details,
        ),
    )


def _finish(
    uow: UnitOfWork,
    task: Task,
    before: WorkflowState,
    after: WorkflowState,
    *,
    action: str,
    principal: Principal,
    now: dt.datetime,
    details: dict[str, Any],
) -> Task:
    _store(uow, task, before, after, now)
    _record(uow, task, action=action, principal=principal, now=now, details=details)
    uow.flush()
    reevaluate(uow, task, now=now)
    return task


def return_report(
    uow: UnitOfWork,
    *,
    code: str,
    event_id: uuid.UUID,
    comment: str,
    principal: Principal,
    now: dt.datetime,
) -> Task:
    """退回: send the latest consolidated report back; its period is owed again."""
    task, role = load_for_action(uow, code=code, principal=principal)
    latest = uow.reports.latest_lead(task.id)
    if latest is None or latest.event_id != event_id:
        raise RuleViolation(
            "only_latest_report_can_be_returned", "只能退回牵头单位最近一次报送的报告", 409
        )
    before = state_of(task)
    after = rules.return_report(before, actor=role, at=now, comment_zh=comment)
    latest.returned_at, latest.return_comment = now, comment.strip()
    if latest.period is not None:
        task.reported_periods = [p for p in task.reported_periods if p != latest.period]
    return _finish(
        uow,
        task,
        before,
        after,
        action="report_returned",
        principal=principal,
        now=now,
        details={"event_id": str(event_id), "comment": comment.strip()},
    )


def accept_report(
    uow: UnitOfWork,
    *,
    code: str,
    event_id: uuid.UUID,
    comment: str,
    principal: Principal,
    now: dt.datetime,
) -> Task:
    """接受: the office accepts the latest consolidated report; it leaves the review queue."""
    task, role = load_for_action(uow, code=code, principal=principal)
    before = state_of(task)
    after = rules.accept_report(before, actor=role, at=now)
    latest = uow.reports.latest_lead(task.id)
    if latest is None or latest.event_id != event_id:
        raise RuleViolation(
            "only_latest_report_can_be_accepted", "只能接受牵头单位最近一次报送的报告", 409
        )
    if latest.accepted_at is not None:
        raise RuleViolation("report_already_accepted", "该报告已接受", 409)
    latest.accepted_at, latest.accept_comment = now, comment.strip() or None
    return _finish(
        uow,
        task,
        before,
        after,
        action="report_accepted",
        principal=principal,
        now=now,
        details={"event_id": str(event_id), "comment": comment.strip()},
    )


def _act(
    uow: UnitOfWork,
    *,
    code: str,
    principal: Principal,
    now: dt.datetime,
    action: str,
    decide: Callable[[WorkflowState, Role], WorkflowState],
    details: Callable[[WorkflowState, WorkflowState], dict[str, Any]],
) -> Task:
    """Lock and load the task, let the rule decide, then store, record and announce.

    `details(before, after)` is what the timeline and the event say about the action.
    """
    task, role = load_for_action(uow, code=code, principal=principal)
    before = state_of(task)
    after = decide(before, role)
    return _finish(
        uow,
        task,
        before,
        after,
        action=action,
        principal=principal,
        now=now,
        details=details(before, after),
    )


def request_extension(
    uow: UnitOfWork,
    *,
    code: str,
    new_due: dt.date,
    reason: str,
    principal: Principal,
    now: dt.datetime,
) -> Task:
    """The lead unit asks, before the due date, for a later one."""
    return _act(
        uow,
        code=code,
        principal=principal,
        now=now,
        action="extension_requested",
        decide=lambda state, role: rules.request_extension(
            state, actor=role, new_due=new_due, asked_at=now, reason_zh=reason
        ),
        details=lambda before, _after: {
            "requested_due": new_due.isoformat(),
            "reason": reason.strip(),
            "current_due": _iso(before.effective_due),
        },
    )


def decide_extension(
    uow: UnitOfWork,
    *,
    code: str,
    grant: bool,
    comment: str,
    principal: Principal,
    now: dt.datetime,
) -> Task:
    """The office grants (the original due date is kept on record) or refuses."""
    decide = rules.grant_extension if grant else rules.refuse_extension
    return _act(
        uow,
        code=code,
        principal=principal,
        now=now,
        action="extension_granted" if grant else "extension_refused",
        decide=lambda state, role: decide(state, actor=role, decided_at=now, comment_zh=comment),
        details=lambda before, after: {
            "original_due": _iso(before.due_date),
            "extended_due": _iso(after.extended_due),
            "comment": comment.strip(),
        },
    )


def request_completion(
    uow: UnitOfWork, *, code: str, summary: str, principal: Principal, now: dt.datetime
) -> Task:
    """申请销号: the lead unit reports the task complete."""
    return _act(
        uow,
        code=code,
        principal=principal,
        now=now,
        action="completion_requested",
        decide=lambda state, role: rules.request_completion(state, actor=role, at=now),
        details=lambda _before, _after: {"summary": summary.strip()},
    )


def close(
    uow: UnitOfWork, *, code: str, comment: str, principal: Principal, now: dt.datetime
) -> Task:
    """销号: the office verifies the completed task and closes it."""
    return _act(
        uow,
        code=code,
        principal=principal,
        now=now,
        action="closed",
        decide=lambda state, role: rules.close(state, actor=role, at=now),
        details=lambda _before, _after: {"comment": comment.strip()},
    )


def reopen(
    uow: UnitOfWork, *, code: str, comment: str, principal: Principal, now: dt.datetime
) -> Task:
    """The office reopens a closed task."""
    return _act(
        uow,
        code=code,
        principal=principal,
        now=now,
        action="reopened",
        decide=lambda state, role: rules.reopen(state, actor=role, at=now),
        details=lambda _before, _after: {"comment": comment.strip()},
    )


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None
