"""Response models of the tracker API."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.tracker.orm import Report, Task
from shared.vocabulary import DecisionKind, Light, TaskStatus, UnitRole


class MilestoneView(BaseModel):
    """A milestone and whether it is done."""

    text: str
    due: dt.date | None
    done_at: dt.datetime | None


class TargetView(BaseModel):
    """A numeric target and the latest reported value."""

    indicator: str
    value: Decimal
    unit: str
    actual: Decimal | None


class ReportView(BaseModel):
    """One stored progress report."""

    event_id: uuid.UUID
    unit: str
    role: str
    period: str | None
    percent: int
    summary: str
    blockers: str | None
    next_steps: str | None
    submitted_at: dt.datetime
    received_at: dt.datetime
    returned_at: dt.datetime | None
    return_comment: str | None
    cites: list[uuid.UUID] = Field(description="引用的配合单位报送 (their event ids)")
    accepted_at: dt.datetime | None
    details: dict[str, Any]


class PartView(BaseModel):
    """One co-unit part: a co-unit's report for a period, and the lead reports citing it."""

    event_id: uuid.UUID
    period: str | None
    percent: int
    summary: str
    blockers: str | None
    submitted_at: dt.datetime
    cited_by: list[uuid.UUID] = Field(description="引用该报送的牵头单位汇总报告")


class MissingPartView(BaseModel):
    """A part the co-unit owes and has not filed past its last on-time day."""

    period: str
    due_at: dt.datetime


class CoUnitPartsView(BaseModel):
    """A co-unit's parts by period, and the parts it owes (as of the last evaluation)."""

    unit: str
    parts: list[PartView]
    missing: list[MissingPartView]


class TaskSummary(BaseModel):
    """A task as listed."""

    # By attribute name from a stored task, by field name when TaskDetail extends a summary.
    model_config = ConfigDict(from_attributes=True, validate_by_name=True, validate_by_alias=True)

    code: str
    section: str | None
    item: str | None
    text: str
    lead_units: list[str]
    co_units: list[str]
    leaders: list[str]
    deadline_text: str
    deadline_kind: str
    due: dt.date | None = Field(validation_alias="effective_due")
    original_due: dt.date | None = Field(validation_alias="due_date")
    status: TaskStatus
    percent: int = Field(description="牵头单位最近报送的完成进度")
    progress: float | None = Field(description="按节点和指标加权汇总的进度")
    light: Light
    light_reasons: list[str]
    days_overdue: int
    last_report_at: dt.datetime | None


class PendingExtension(BaseModel):
    """An extension the lead unit asked for, awaiting the office."""

    requested_due: dt.date
    asked_at: dt.datetime
    reason: str


class TaskDetail(TaskSummary):
    """A task with its milestones, targets and full report history."""

    text_original: str | None
    cadence: str | None
    report_due_at: dt.datetime | None
    pending_extension: PendingExtension | None
    return_comment: str | None
    milestones: list[MilestoneView]
    targets: list[TargetView]
    reports: list[ReportView]
    co_unit_parts: list[CoUnitPartsView] = Field(description="配合单位分项报送")


class TimelineEntry(BaseModel):
    """One thing that happened to a task."""

    at: dt.datetime
    kind: str
    actor: str
    summary: str
    details: dict[str, Any]


class TimelinePage(BaseModel):
    """A page of a task's timeline, oldest first."""

    items: list[TimelineEntry]
    total: int
    limit: int
    offset: int


class TaskPage(BaseModel):
    """A page of tasks."""

    items: list[TaskSummary]
    total: int
    limit: int
    offset: int


class DecisionAction(BaseModel):
    """A call that settles (or answers) a pending decision."""

    method: str
    path: str
    label: str


class PendingDecisionView(BaseModel):
    """One item of the office's queue: what, about which task, from whom, since when."""

    kind: DecisionKind = Field(
        description="report_review 审核报告 · extension_request 审批延期 · "
        "completion_request 核验申请销号"
    )
    task_code: str
    task_title: str
    unit: str = Field(description="报送或申请的单位")
    since: dt.datetime = Field(description="报送或申请的时间；清单按此从早到晚排列")
    todo: str = Field(description="待办事项")
    actions: list[DecisionAction]
    event_id: uuid.UUID | None = Field(description="待审核报告的回执编号")
    period: str | None = Field(description="待审核报告的报送期")
    requested_due: dt.date | None = Field(description="申请延至")


class PendingDecisionPage(BaseModel):
    """A page of pending decisions, oldest first; `next_cursor` fetches the next (null: last)."""

    items: list[PendingDecisionView]
    limit: int
    next_cursor: str | None


def task_summary(task: Task) -> TaskSummary:
    """The list view of a task."""
    return TaskSummary.model_validate(task)


def co_unit_parts(task: Task, reports: list[Report]) -> list[CoUnitPartsView]:
    """Each co-unit's parts, by period then time filed, with the lead reports citing each, and
    the parts it owes as the last evaluation found them."""
    cited_by: dict[uuid.UUID, list[uuid.UUID]] = {}
    for report in reports:
        if report.role == UnitRole.LEAD:
            for cited in report.cites or ():
                cited_by.setdefault(cited, []).append(report.event_id)
    missing = (task.announced or {}).get("missing_parts") or []
    views = []
    for unit in task.co_units:
        parts = sorted(
            (r for r in reports if r.role == UnitRole.CO and r.unit.name == unit),
            key=lambda r: (r.period or "", r.submitted_at),
        )
        views.append(
            CoUnitPartsView(
                unit=unit,
                parts=[
                    PartView(
                        event_id=r.event_id,
                        period=r.period,
                        percent=r.percent,
                        summary=r.summary,
                        blockers=r.blockers,
                        submitted_at=r.submitted_at,
                        cited_by=cited_by.get(r.event_id, []),
                    )
                    for r in parts
                ],
                missing=[
                    MissingPartView(period=m["period"], due_at=m["due_at"])
                    for m in missing
                    if m.get("unit") == unit
                ],
            )
        )
    return views


def task_detail(task: Task, reports: list[Report]) -> TaskDetail:
    """The detail view of a task."""
    return TaskDetail(
        **task_summary(task).model_dump(),
        text_original=task.text_original,
        cadence=task.cadence,
        report_due_at=task.report_due_at,
        pending_extension=(
            PendingExtension(
                requested_due=task.pending_extension_due,
                asked_at=task.pending_extension_asked_at,
                reason=task.pending_extension_reason or "",
            )
            if task.pending_extension_due and task.pending_extension_asked_at
            else None
        ),
        return_comment=task.return_comment,
        milestones=[
            MilestoneView(text=m.text, due=m.due_date, done_at=m.done_at) for m in task.milestones
        ],
        targets=[
            TargetView(indicator=t.indicator, value=t.value, unit=t.unit, actual=t.actual)
            for t in task.targets
        ],
        reports=[
            ReportView(
                event_id=r.event_id,
                unit=r.unit.name,
                role=r.role,
                period=r.period,
                percent=r.percent,
                summary=r.summary,
                blockers=r.blockers,
                next_steps=r.next_steps,
                submitted_at=r.submitted_at,
                received_at=r.received_at,
                returned_at=r.returned_at,
                return_comment=r.return_comment,
                cites=list(r.cites or ()),
                accepted_at=r.accepted_at,
                details=r.payload,
            )
            for r in reports
        ],
        co_unit_parts=co_unit_parts(task, reports),
    )
