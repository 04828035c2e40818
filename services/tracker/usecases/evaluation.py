"""Re-evaluating a task's light and announcing a changed condition; the scan tick."""

from __future__ import annotations

import datetime as dt

from services.tracker import metrics
from services.tracker.assessment import assess
from services.tracker.domain.lights import LightPolicy
from services.tracker.orm import Task, TaskAction
from services.tracker.usecases.ports import UnitOfWork
from shared import topics
from shared.events import TaskConditionChanged, new_event_id


def reevaluate(
    uow: UnitOfWork, task: Task, *, now: dt.datetime, policy: LightPolicy | None = None
) -> bool:
    """Recompute the task's light by `policy` (default: the supervision policy in force);
    announce it through the outbox if its condition changed."""
    assessment = assess(task, now=now, policy=policy)
    task.progress = assessment.progress
    task.next_evaluation_at = assessment.next_evaluation_at
    task.days_overdue = assessment.days_overdue
    task.light_reasons = list(assessment.reasons)
    task.red_since = assessment.red_since
    task.report_due_at = assessment.report_due_at
    previous = task.light
    if assessment.light != task.light or task.light_changed_at is None:
        task.light = assessment.light
        task.light_changed_at = now
        uow.timeline.add(
            TaskAction(
                task_id=task.id,
                action="light_changed",
                actor_role="system",
                actor_unit=None,
                actor_key_id=None,
                at=now,
                details={
                    "from": previous,
                    "to": task.light,
                    "reasons": list(assessment.reasons),
                    "policy_version": assessment.policy_version,
                },
            )
        )
    # Day counters are left out: the notifier derives them from red_since and due.
    condition = {
        "light": task.light,
        "status": task.status,
        "due": _iso(task.effective_due),
        "report_due_at": _iso(task.report_due_at),
        # A report after a 签收 must reach the notifier, or the ack would re-arm regardless.
        "last_report_at": _iso(task.last_report_at),
    }
    if condition == task.announced:
        return False
    task.announced = condition
    uow.outbox.add(
        topic=topics.TASK_EVENTS,
        key=task.code,
        event=TaskConditionChanged(
            event_id=new_event_id(),
            occurred_at=now,
            task_code=task.code,
            title=task.text,
            section=task.section,
            light=task.light,
            previous_light=previous if previous != task.light else None,
            light_since=task.light_changed_at,
            reasons=list(assessment.reasons),
            status=task.status,
            due=task.effective_due,
            original_due=task.due_date,
            days_overdue=assessment.days_overdue,
            red_since=assessment.red_since,
            report_due_at=task.report_due_at,
            last_report_at=task.last_report_at,
            lead_units=task.lead_units,
            co_units=task.co_units,
            leaders=list(task.leaders),
        ),
    )
    if previous != task.light:
        metrics.LIGHT_CHANGES.labels(task.light).inc()
    return True


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def scan_due_tasks(uow: UnitOfWork, *, now: dt.datetime, batch_size: int) -> int:
    """Re-evaluate one batch of tasks whose next evaluation time has come; safe across
    replicas (each takes tasks no other holds). Returns how many were evaluated."""
    tasks = uow.tasks.due_for_evaluation(now, limit=batch_size)
    for task in tasks:
        reevaluate(uow, task, now=now)
    return len(tasks)
