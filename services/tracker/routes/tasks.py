"""Task queries: one task, filtered lists, the overdue list, a task's timeline."""

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import Select, func, select

from services.tracker.access import visible_tasks
from services.tracker.deps import SessionDep, TaskReaderDep, visible_task
from services.tracker.orm import ExtensionDecision, Report, Task, TaskAction, TaskUnit, Unit
from services.tracker.views import (
    TaskDetail,
    TaskPage,
    TimelineEntry,
    TimelinePage,
    task_detail,
    task_summary,
)
from shared.httpguard import error_responses
from shared.textguard import PATH_SEGMENT, SINGLE_LINE
from shared.vocabulary import Light, TaskStatus, UnitRole

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

READ_ONE = error_responses(401, 403, 404, 422, 429, 503)
READ_MANY = error_responses(401, 403, 422, 429, 503)
Limit = Annotated[int, Query(ge=1, le=200, description="每页条数")]
Offset = Annotated[int, Query(ge=0, le=100_000)]
TaskCode = Annotated[str, Path(max_length=120, description="任务编号"), PATH_SEGMENT]


UnitFilter = Annotated[
    str | None, Query(max_length=200, description="责任单位（牵头或配合）"), SINGLE_LINE
]
SectionFilter = Annotated[str | None, Query(max_length=200, description="主要任务"), SINGLE_LINE]
LeaderFilter = Annotated[str | None, Query(max_length=50, description="分管领导"), SINGLE_LINE]


@router.get("/overdue", response_model=TaskPage, responses=READ_MANY)
def overdue_tasks(
    db: SessionDep, who: TaskReaderDep, limit: Limit = 50, offset: Offset = 0
) -> TaskPage:
    """Red tasks the caller may see, the longest overdue first (逾期清单)."""
    query = select(Task).where(visible_tasks(who), Task.light == Light.RED)
    return _page(db, query.order_by(Task.days_overdue.desc(), Task.id), limit=limit, offset=offset)


def task_view(db: SessionDep, task: Task) -> TaskDetail:
    """The detail view of a task the caller may see, with its report history."""
    reports = list(
        db.execute(
            select(Report).where(Report.task_id == task.id).order_by(Report.submitted_at)
        ).scalars()
    )
    return task_detail(task, reports)


@router.get("/{code}", response_model=TaskDetail, responses=READ_ONE)
def get_task(code: TaskCode, request: Request, db: SessionDep, who: TaskReaderDep) -> TaskDetail:
    """A task's state, milestones, targets and full report history."""
    return task_view(db, visible_task(request, db, who, code))


@router.get("", response_model=TaskPage, responses=READ_MANY)
def list_tasks(
    db: SessionDep,
    who: TaskReaderDep,
    unit: UnitFilter = None,
    role: Annotated[UnitRole | None, Query(description="只看牵头或配合")] = None,
    light: Annotated[Light | None, Query(description="灯色")] = None,
    section: SectionFilter = None,
    leader: LeaderFilter = None,
    status_: Annotated[TaskStatus | None, Query(alias="status", description="状态")] = None,
    due_after: Annotated[dt.date | None, Query(description="完成时限不早于")] = None,
    due_before: Annotated[dt.date | None, Query(description="完成时限不晚于")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> TaskPage:
    """Tasks the caller may see, filtered by unit, light, section, leader, status and due window."""
    query = select(Task).where(visible_tasks(who))
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
        items=[task_summary(t) for t in tasks],
        total=total.scalar_one(),
        limit=limit,
        offset=offset,
    )


@router.get("/{code}/timeline", response_model=TimelinePage, responses=READ_ONE)
def timeline(
    code: TaskCode,
    request: Request,
    db: SessionDep,
    who: TaskReaderDep,
    limit: Limit = 100,
    offset: Offset = 0,
) -> TimelinePage:
    """Everything that happened to a task, oldest first: reports, lights, office actions."""
    task = visible_task(request, db, who, code)
    entries: list[TimelineEntry] = []
    for report in db.execute(select(Report).where(Report.task_id == task.id)).scalars():
        entries.append(
            TimelineEntry(
                at=report.submitted_at,
                kind="report",
                actor=report.unit.name,
                summary=(
                    f"{report.unit.name}报送分项进展 {report.percent}%"
                    if report.role == UnitRole.CO
                    else f"{report.unit.name}报送进展 {report.percent}%"
                ),
                details={
                    "event_id": str(report.event_id),
                    "period": report.period,
                    "role": report.role,
                    "returned": report.returned_at is not None,
                    "cites": [str(c) for c in report.cites or ()],
                    "accepted": report.accepted_at is not None,
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
    "report_accepted": "督查室接受报告",
    "extension_requested": "牵头单位申请延期",
    "extension_granted": "督查室同意延期",
    "extension_refused": "督查室不同意延期",
    "completion_requested": "牵头单位申请销号",
    "closed": "督查室销号",
    "reopened": "督查室重新启用",
    "light_changed": "灯色变化",
}
