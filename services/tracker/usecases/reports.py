"""Applying a progress report: store it in the task's history, move the task, re-light it."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

import structlog

from services.tracker import metrics
from services.tracker.assessment import period_for_report
from services.tracker.domain import workflow as rules
from services.tracker.domain.workflow import Role, RuleViolation, WorkflowState
from services.tracker.orm import Report, Task
from services.tracker.usecases.evaluation import reevaluate
from services.tracker.usecases.ports import UnitOfWork
from shared.events import ProgressReportSubmitted
from shared.kafka import MessagePosition, Outcome, PoisonMessage
from shared.vocabulary import TaskStatus, UnitRole

log = structlog.get_logger(__name__)


class UnknownTask(PoisonMessage):
    """A report names a task the catalog does not hold."""


class UnknownUnit(PoisonMessage):
    """A report names a unit the catalog does not hold."""


def apply_report(
    uow: UnitOfWork,
    event: ProgressReportSubmitted,
    *,
    position: MessagePosition,
    now: dt.datetime,
) -> Outcome:
    """Store a report in the task's history and update the task's state and light."""
    if not uow.processed.mark(event.event_id, position):
        return Outcome.DUPLICATE
    task = uow.tasks.get_for_update(event.task_code)
    if task is None:
        raise UnknownTask(f"未知任务 (unknown task): {event.task_code}")
    unit = uow.units.by_name(event.unit)
    if unit is None:
        raise UnknownUnit(f"未知单位 (unknown unit): {event.unit}")
    assignment = next((a for a in task.assignments if a.unit_id == unit.id), None)
    role = assignment.role if assignment is not None else "none"
    if role == "none":
        # Intake authorised it against the directory it had; keep the record, flag the drift.
        log.warning("report.unit_no_longer_assigned", task=task.code, unit=unit.name)
    report = event.report
    part_of = assignment if role == UnitRole.CO else None
    period = period_for_report(
        task, period=report.period, submitted_at=event.occurred_at, co_unit=part_of
    )
    uow.reports.add(
        Report(
            event_id=event.event_id,
            task_id=task.id,
            unit_id=unit.id,
            role=role,
            period=period,
            percent=report.percent,
            summary=report.summary,
            blockers=report.blockers,
            next_steps=report.next_steps,
            cites=_citations(uow, task, role=role, cites=report.cites),
            payload=report.model_dump(mode="json"),
            submitted_at=event.occurred_at,
        )
    )
    actor = Role.LEAD_UNIT if role == UnitRole.LEAD else Role.CO_UNIT
    try:
        after = rules.submit_report(
            WorkflowState(status=TaskStatus(task.status)), actor=actor, at=event.occurred_at
        )
    except RuleViolation as violation:
        # Accepted with 202 while the task could still take reports: keep the record, but it
        # does not move the task (e.g. it arrived after the completion request).
        log.warning("report.recorded_only", task=task.code, rule=violation.code)
        after = None
    if role == UnitRole.LEAD and after is not None:
        # The lead unit's report is the task's consolidated report.
        task.status = after.status.value
        task.return_comment = after.return_comment_zh
        task.percent = report.percent
        task.last_report_has_blockers = bool(report.blockers)
        done = {m.milestone for m in report.milestones if m.done}
        for milestone in task.milestones:
            # Reports name a milestone by its text (at most 200 characters of it).
            if milestone.text[:200] in done and milestone.done_at is None:
                milestone.done_at = event.occurred_at
        actuals = {i.indicator: i.value for i in report.indicators}
        for target in task.targets:
            if target.indicator in actuals:
                target.actual = actuals[target.indicator]
        if period is not None and period not in task.reported_periods:
            task.reported_periods = [*task.reported_periods, period]
    if part_of is not None and after is not None and period is not None:
        # A co-unit's report is its part for the period (docs/domain.md §4).
        parts = part_of.reported_periods or []
        if period not in parts:
            part_of.reported_periods = [*parts, period]
    task.last_report_at = max(filter(None, (task.last_report_at, event.occurred_at)))
    metrics.REPORTS_APPLIED.labels(role).inc()
    reevaluate(uow, task, now=now)
    return Outcome.APPLIED


def _citations(
    uow: UnitOfWork, task: Task, *, role: str, cites: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """The cited co-unit parts that are parts of this task, in the order cited.

    Only the lead unit's consolidated report cites parts. Intake cannot see stored reports, so
    a citation of anything else (another task's report, a lead report, an unknown id) is
    checked here: left out of the record and logged, while the payload keeps what was sent.
    """
    if not cites:
        return []
    found = (
        {r.event_id for r in uow.reports.parts_among(task.id, cites)}
        if role == UnitRole.LEAD
        else set()
    )
    kept = [event_id for event_id in dict.fromkeys(cites) if event_id in found]
    refused = [str(event_id) for event_id in cites if event_id not in found]
    if refused:
        log.warning("report.citations_refused", task=task.code, role=role, cites=refused)
    return kept
