"""Task queries: one task, filtered lists, the overdue list, a task's timeline."""

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import Select, func, select

from services.tracker.auth import Principal
from services.tracker.deps import PrincipalDep, SessionDep
from services.tracker.orm import ExtensionDecision, Report, Task, TaskAction, TaskUnit, Unit
from services.tracker.views import (
    TaskDetail,
    TaskPage,
    TaskSummary,
    TimelineEntry,
    TimelinePage,
    task_detail,
    task_summary,
)

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

Light = Literal["green", "yellow", "red", "blue", "grey"]
SEES_EVERYTHING = frozenset({"supervisor", "admin", "leader", "operator"})
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "任务不存在"},
    401: {"description": "未认证"},
}
Limit = Annotated[int, Query(ge=1, le=200, description="每页条数")]
Offset = Annotated[int, Query(ge=0, le=100_000)]


def visible_task(db: SessionDep, who: Principal, code: str) -> Task:
    """The task if the caller may see it; unknown and forbidden both answer 404."""
    task = db.execute(select(Task).where(Task.code == code)).scalar_one_or_none()
    if task is None or not (
        who.role in SEES_EVERYTHING or any(a.unit_id == who.unit_id for a in task.assignments)
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"任务不存在 (no task {code})")
    return task


def _scoped(query: Select[Any], who: Principal) -> Select[Any]:
    if who.role in SEES_EVERYTHING:
        return query
    return query.where(Task.id.in_(select(TaskUnit.task_id).where(TaskUnit.unit_id == who.unit_id)))


@router.get("/overdue", response_model=TaskPage, responses={401: {"description": "未认证"}})
def overdue_tasks(
    db: SessionDep, who: PrincipalDep, limit: Limit = 50, offset: Offset = 0
) -> TaskPage:
    """Red tasks, the longest overdue first (逾期清单)."""
    query = _scoped(select(Task).where(Task.light == "red"), who)
    return _page(db, query.order_by(Task.days_overdue.desc(), Task.id), limit=limit, offset=offset)


@router.get("/{code}", response_model=TaskDetail, responses=NOT_FOUND)
def get_task(code: str, db: SessionDep, who: PrincipalDep) -> TaskDetail:
    """A task's state, milestones, targets and full report history."""
    task = visible_task(db, who, code)
    reports = list(
        db.execute(
            select(Report).where(Report.task_id == task.id).order_by(Report.submitted_at)
        ).scalars()
    )
    return task_detail(task, reports)


@router.get("", response_model=TaskPage, responses={401: {"description": "未认证"}})
def list_tasks(
    db: SessionDep,
    who: PrincipalDep,
    unit: Annotated[str | None, Query(max_length=200, description="责任单位（牵头或配合）")] = None,
    role: Annotated[Literal["lead", "co"] | None, Query(description="只看牵头或配合")] = None,
    light: Annotated[Light | None, Query(description="灯色")] = None,
    section: Annotated[str | None, Query(max_length=200, description="主要任务")] = None,
    leader: Annotated[str | None, Query(max_length=50, description="分管领导")] = None,
    status_: Annotated[str | None, Query(alias="status", max_length=30)] = None,
    due_after: Annotated[dt.date | None, Query(description="完成时限不早于")] = None,
    due_before: Annotated[dt.date | None, Query(description="完成时限不晚于")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> TaskPage:
    """Tasks filtered by unit, light, section, leader, status and due window; paginated."""
    query = _scoped(select(Task), who)
    if unit is not None:
        units = select(TaskUnit.task_id).join(Unit).where(Unit.name == unit)
        if role is not None:
            units = units.where(TaskUnit.role == role)
        query = query.where(Task.id.in_(units))
    if light is not None:
        query = query.where(Task.light == light)
    if section is not None:
        query = query.where(Task.section == section)
    if leader is not None:
        query = query.where(Task.leaders.contains([leader]))
    if status_ is not None:
        query = query.where(Task.status == status_)
    due = func.coalesce(Task.extended_due_date, Task.due_date)
    if due_after is not None:
        query = query.where(due >= due_after)
    if due_before is not None:
        query = query.where(due <= due_before)
    return _page(db, query.order_by(Task.id), limit=limit, offset=offset)


def _page(db: SessionDep, query: Select[Any], *, limit: int, offset: int) -> TaskPage:
    total = db.execute(select(func.count()).select_from(query.order_by(None).subquery()))
    tasks = db.execute(query.limit(limit).offset(offset)).scalars().all()
    return TaskPage(
        items=[TaskSummary(**task_summary(t)) for t in tasks],
        total=total.scalar_one(),
        limit=limit,
        offset=offset,
    )


@router.get("/{code}/timeline", response_model=TimelinePage, responses=NOT_FOUND)
def timeline(
    code: str, db: SessionDep, who: PrincipalDep, limit: Limit = 100, offset: Offset = 0
) -> TimelinePage:
    """Everything that happened to a task, oldest first: reports, lights, office actions."""
    task = visible_task(db, who, code)
    entries: list[TimelineEntry] = []
    for report in db.execute(select(Report).where(Report.task_id == task.id)).scalars():
        entries.append(
            TimelineEntry(
                at=report.submitted_at,
                kind="report",
                actor=report.unit.name,
                summary=f"{report.unit.name}报送进展 {report.percent}%",
                details={
                    "event_id": str(report.event_id),
                    "period": report.period,
                    "role": report.role,
                    "returned": report.returned_at is not None,
                },
            )
        )
    for action in db.execute(select(TaskAction).where(TaskAction.task_id == task.id)).scalars():
        entries.append(
            TimelineEntry(
                at=action.at,
                kind=action.action,
                actor=action.actor_unit or action.actor_role,
                summary=ACTION_LABELS.get(action.action, action.action),
                details=action.details,
            )
        )
    withdrawn = select(ExtensionDecision).where(
        ExtensionDecision.task_id == task.id, ExtensionDecision.outcome == "withdrawn"
    )
    for decision in db.execute(withdrawn).scalars():
        entries.append(
            TimelineEntry(
                at=decision.decided_at,
                kind="extension_withdrawn",
                actor="系统",
                summary="申请销号，延期申请自动撤回",
                details={"requested_due": decision.requested_due.isoformat()},
            )
        )
    entries.sort(key=lambda e: e.at)
    return TimelinePage(
        items=entries[offset : offset + limit], total=len(entries), limit=limit, offset=offset
    )


ACTION_LABELS = {
    "report_returned": "督查室退回报告",
    "extension_requested": "牵头单位申请延期",
    "extension_granted": "督查室同意延期",
    "extension_refused": "督查室不同意延期",
    "completion_requested": "牵头单位申请销号",
    "closed": "督查室销号",
    "reopened": "督查室重新启用",
    "light_changed": "灯色变化",
}
