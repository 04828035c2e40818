"""The office's queue of pending decisions (待办事项): reports to review, extension and
completion requests to decide, oldest first, cursor-paginated."""

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Query

from services.tracker.adapters.sql import SqlUnitOfWork
from services.tracker.deps import PrincipalDep, SessionDep
from services.tracker.usecases import decisions
from services.tracker.views import PendingDecisionPage, PendingDecisionView
from shared.httpguard import error_responses
from shared.textguard import SINGLE_LINE

router = APIRouter(prefix="/v1/decisions", tags=["workflow"])

Cursor = Annotated[
    str | None, Query(max_length=200, description="上一页返回的 next_cursor"), SINGLE_LINE
]


@router.get(
    "/pending",
    response_model=PendingDecisionPage,
    responses=error_responses(401, 403, 422, 429, 503),
)
def pending_decisions(
    db: SessionDep,
    who: PrincipalDep,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=200, description="每页条数")] = 50,
) -> PendingDecisionPage:
    """待办事项：待审核的报告、待审批的延期申请和待核验的申请销号，最早的在前。

    督查室看全部，分管领导看其分管任务的；其他角色 403。
    """
    page = decisions.pending_decisions(SqlUnitOfWork(db), principal=who, cursor=cursor, limit=limit)
    return PendingDecisionPage(
        items=[PendingDecisionView.model_validate(dataclasses.asdict(item)) for item in page.items],
        limit=limit,
        next_cursor=page.next_cursor,
    )
