"""Workflow actions: returns, extensions, completion requests, sign-off and reopening."""

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.tracker import actions
from services.tracker.deps import NowDep, PrincipalDep, UowDep
from services.tracker.routes.tasks import get_task
from services.tracker.views import TaskDetail

router = APIRouter(prefix="/v1/tasks/{code}", tags=["workflow"])

Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
RULES: dict[int | str, dict[str, Any]] = {
    401: {"description": "未认证"},
    403: {"description": "无权办理（body.code 指明规则）"},
    404: {"description": "任务不存在"},
    409: {"description": "当前状态不允许（body.code 指明规则）"},
    422: {"description": "参数不合法"},
}


class Strict(BaseModel):
    """Request bodies refuse fields they do not define."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ReturnRequest(Strict):
    """退回: which report, and why."""

    event_id: uuid.UUID = Field(description="被退回报告的回执编号")
    comment: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
    ] = Field(description="退回意见")


class ExtensionRequestBody(Strict):
    """延期申请."""

    new_due: dt.date = Field(description="申请的新完成时限")
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
    ] = Field(description="延期理由")


class Decision(Strict):
    """An office decision with an optional comment."""

    comment: Comment = ""


class CompletionRequestBody(Strict):
    """申请销号: what was achieved."""

    summary: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)
    ] = Field(description="完成情况")


def _done(uow: UowDep, code: str, who: PrincipalDep) -> TaskDetail:
    uow.commit()
    return get_task(code, uow.session, who)


@router.post("/returns", response_model=TaskDetail, responses=RULES)
def return_report(
    code: str, body: ReturnRequest, uow: UowDep, who: PrincipalDep, now: NowDep
) -> TaskDetail:
    """督查室退回牵头单位最近一次报告；该期报告须重新报送。"""
    actions.return_report(
        uow.session, code=code, event_id=body.event_id, comment=body.comment, principal=who, now=now
    )
    return _done(uow, code, who)


@router.post("/extension-requests", response_model=TaskDetail, responses=RULES)
def request_extension(
    code: str, body: ExtensionRequestBody, uow: UowDep, who: PrincipalDep, now: NowDep
) -> TaskDetail:
    """牵头单位在完成时限前申请延期。"""
    actions.request_extension(
        uow.session, code=code, new_due=body.new_due, reason=body.reason, principal=who, now=now
    )
    return _done(uow, code, who)


@router.post("/extension-requests/grant", response_model=TaskDetail, responses=RULES)
def grant_extension(
    code: str, body: Decision, uow: UowDep, who: PrincipalDep, now: NowDep
) -> TaskDetail:
    """督查室同意延期；原完成时限留档。"""
    actions.decide_extension(
        uow.session, code=code, grant=True, comment=body.comment, principal=who, now=now
    )
    return _done(uow, code, who)


@router.post("/extension-requests/refuse", response_model=TaskDetail, responses=RULES)
def refuse_extension(
    code: str, body: Decision, uow: UowDep, who: PrincipalDep, now: NowDep
) -> TaskDetail:
    """督查室不同意延期。"""
    actions.decide_extension(
        uow.session, code=code, grant=False, comment=body.comment, principal=who, now=now
    )
    return _done(uow, code, who)


@router.post("/completion-requests", response_model=TaskDetail, responses=RULES)
def request_completion(
    code: str, body: CompletionRequestBody, uow: UowDep, who: PrincipalDep, now: NowDep
) -> TaskDetail:
    """牵头单位申请销号。"""
    actions.request_completion(uow.session, code=code, summary=body.summary, principal=who, now=now)
    return _done(uow, code, who)


@router.post("/close", response_model=TaskDetail, responses=RULES)
def close(code: str, body: Decision, uow: UowDep, who: PrincipalDep, now: NowDep) -> TaskDetail:
    """督查室核验后销号。"""
    actions.close(uow.session, code=code, comment=body.comment, principal=who, now=now)
    return _done(uow, code, who)


@router.post("/reopen", response_model=TaskDetail, responses=RULES)
def reopen(code: str, body: Decision, uow: UowDep, who: PrincipalDep, now: NowDep) -> TaskDetail:
    """督查室重新启用已销号的任务。"""
    actions.reopen(uow.session, code=code, comment=body.comment, principal=who, now=now)
    return _done(uow, code, who)
