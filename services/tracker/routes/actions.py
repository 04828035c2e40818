"""Workflow actions: returns and acceptances, extensions, completion requests, sign-off and
reopening.

Who may act is settled before the body is read or the task's state is looked at: a task
the caller may not see answers 404 (as if it did not exist), an office action by anyone
but the supervising office 403, a lead-unit action by anyone but the task's lead unit 403.
The task is locked before any of this is checked (lock, then decide): two decisions on one
task run one after the other, the second on what the first left.
"""

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from services.tracker import access, audit
from services.tracker.adapters.sql import SqlUnitOfWork
from services.tracker.auth import Principal
from services.tracker.deps import NowDep, SessionDep, TaskReaderDep, UowDep, visible_task
from services.tracker.orm import Task
from services.tracker.routes.tasks import TaskCode, task_view
from services.tracker.usecases import workflow_actions as actions
from services.tracker.views import TaskDetail
from shared.httpguard import error_responses
from shared.textguard import MULTI_LINE, OPTIONAL_MULTI_LINE

router = APIRouter(prefix="/v1/tasks/{code}", tags=["workflow"])

RULES = error_responses(401, 403, 404, 409, 413, 422, 429, 503)
Comment = Annotated[str, Field(max_length=2000), OPTIONAL_MULTI_LINE]
Reason = Annotated[str, Field(max_length=2000), MULTI_LINE]


class Strict(BaseModel):
    """Request bodies refuse fields they do not define (the actor and state never come in)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ReturnRequest(Strict):
    """退回: which report, and why."""

    event_id: uuid.UUID = Field(description="被退回报告的回执编号")
    comment: Reason = Field(description="退回意见")


class ExtensionRequestBody(Strict):
    """延期申请."""

    new_due: dt.date = Field(description="申请的新完成时限")
    reason: Reason = Field(description="延期理由")


class Decision(Strict):
    """An office decision with an optional comment."""

    comment: Comment = ""


class CompletionRequestBody(Strict):
    """申请销号: what was achieved."""

    summary: Annotated[str, Field(max_length=5000), MULTI_LINE] = Field(description="完成情况")


def office_action(rule: str, message: str) -> Callable[..., Principal]:
    """Admit only the supervising office, once the task is known to be visible."""

    def check(code: TaskCode, request: Request, db: SessionDep, who: TaskReaderDep) -> Principal:
        task = visible_task(request, db, who, code, for_update=True)
        access.require_office(who, task, code=rule, message_zh=message)
        return who

    return check


def lead_unit_action(co_unit_rule: str, other_rule: str, what: str) -> Callable[..., Principal]:
    """Admit only the task's lead unit, once the task is known to be visible."""

    def check(code: TaskCode, request: Request, db: SessionDep, who: TaskReaderDep) -> Principal:
        task = visible_task(request, db, who, code, for_update=True)
        access.require_lead_unit(
            who, task, co_unit_code=co_unit_rule, other_code=other_rule, what_zh=what
        )
        return who

    return check


Returner = Annotated[
    Principal,
    Depends(office_action("only_supervisor_returns_reports", "只有督查室可以退回报告")),
]
Accepter = Annotated[
    Principal,
    Depends(office_action("only_supervisor_accepts_reports", "只有督查室可以接受报告")),
]
Decider = Annotated[
    Principal,
    Depends(office_action("only_supervisor_decides_extensions", "只有督查室可以审批延期")),
]
Closer = Annotated[
    Principal, Depends(office_action("only_supervisor_closes", "只有督查室可以销号"))
]
Reopener = Annotated[
    Principal, Depends(office_action("only_supervisor_reopens", "只有督查室可以重新启用任务"))
]
ExtensionAsker = Annotated[
    Principal,
    Depends(
        lead_unit_action(
            "co_unit_cannot_request_extension", "only_lead_unit_requests_extension", "申请延期"
        )
    ),
]
CompletionAsker = Annotated[
    Principal,
    Depends(
        lead_unit_action(
            "co_unit_cannot_request_completion", "only_lead_unit_requests_completion", "申请销号"
        )
    ),
]


def _done(
    uow: UowDep, request: Request, task: Task, who: Principal, now: dt.datetime, body: Strict
) -> TaskDetail:
    audit.record_write(
        uow.session, request, principal=who, now=now, details=body.model_dump(mode="json")
    )
    uow.commit()
    return task_view(uow.session, task)


@router.post("/returns", response_model=TaskDetail, responses=RULES)
def return_report(
    code: TaskCode, body: ReturnRequest, request: Request, uow: UowDep, who: Returner, now: NowDep
) -> TaskDetail:
    """督查室退回牵头单位最近一次报告；该期报告须重新报送。"""
    task = actions.return_report(
        SqlUnitOfWork(uow.session),
        code=code,
        event_id=body.event_id,
        comment=body.comment,
        principal=who,
        now=now,
    )
    return _done(uow, request, task, who, now, body)


@router.post("/reports/{event_id}/accept", response_model=TaskDetail, responses=RULES)
def accept_report(
    code: TaskCode,
    event_id: uuid.UUID,
    body: Decision,
    request: Request,
    uow: UowDep,
    who: Accepter,
    now: NowDep,
) -> TaskDetail:
    """督查室接受牵头单位最近一次报告；该报告移出待审核清单。"""
    task = actions.accept_report(
        SqlUnitOfWork(uow.session),
        code=code,
        event_id=event_id,
        comment=body.comment,
        principal=who,
        now=now,
    )
    return _done(uow, request, task, who, now, body)


@router.post("/extension-requests", response_model=TaskDetail, responses=RULES)
def request_extension(
    code: TaskCode,
    body: ExtensionRequestBody,
    request: Request,
    uow: UowDep,
    who: ExtensionAsker,
    now: NowDep,
) -> TaskDetail:
    """牵头单位在完成时限前申请延期。"""
    task = actions.request_extension(
        SqlUnitOfWork(uow.session),
        code=code,
        new_due=body.new_due,
        reason=body.reason,
        principal=who,
        now=now,
    )
    return _done(uow, request, task, who, now, body)


def _decide_extension(grant: bool) -> Callable[..., TaskDetail]:
    def decide(
        code: TaskCode, body: Decision, request: Request, uow: UowDep, who: Decider, now: NowDep
    ) -> TaskDetail:
        task = actions.decide_extension(
            SqlUnitOfWork(uow.session),
            code=code,
            grant=grant,
            comment=body.comment,
            principal=who,
            now=now,
        )
        return _done(uow, request, task, who, now, body)

    return decide


# One route body for both answers; the route's name is what the audit log records.
router.post(
    "/extension-requests/grant",
    response_model=TaskDetail,
    responses=RULES,
    name="grant_extension",
    description="督查室同意延期；原完成时限留档。",
)(_decide_extension(grant=True))
router.post(
    "/extension-requests/refuse",
    response_model=TaskDetail,
    responses=RULES,
    name="refuse_extension",
    description="督查室不同意延期。",
)(_decide_extension(grant=False))


@router.post("/completion-requests", response_model=TaskDetail, responses=RULES)
def request_completion(
    code: TaskCode,
    body: CompletionRequestBody,
    request: Request,
    uow: UowDep,
    who: CompletionAsker,
    now: NowDep,
) -> TaskDetail:
    """牵头单位申请销号。"""
    task = actions.request_completion(
        SqlUnitOfWork(uow.session), code=code, summary=body.summary, principal=who, now=now
    )
    return _done(uow, request, task, who, now, body)


@router.post("/close", response_model=TaskDetail, responses=RULES)
def close(
    code: TaskCode, body: Decision, request: Request, uow: UowDep, who: Closer, now: NowDep
) -> TaskDetail:
    """督查室核验后销号。"""
    task = actions.close(
        SqlUnitOfWork(uow.session), code=code, comment=body.comment, principal=who, now=now
    )
    return _done(uow, request, task, who, now, body)


@router.post("/reopen", response_model=TaskDetail, responses=RULES)
def reopen(
    code: TaskCode, body: Decision, request: Request, uow: UowDep, who: Reopener, now: NowDep
) -> TaskDetail:
    """督查室重新启用已销号的任务。"""
    task = actions.reopen(
        SqlUnitOfWork(uow.session), code=code, comment=body.comment, principal=who, now=now
    )
    return _done(uow, request, task, who, now, body)
