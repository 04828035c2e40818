"""Tracker use cases. Each takes the caller's session: the caller owns the transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.tracker import metrics, outbox
from services.tracker.assessment import assess, period_for_report
from services.tracker.domain import workflow as rules
from services.tracker.domain.lights import LightPolicy
from services.tracker.domain.workflow import Role, RuleViolation, WorkflowState
from services.tracker.orm import (
    ApiKey,
    OutboxMessage,
    ProcessedEvent,
    Report,
    Task,
    TaskAction,
    Unit,
)
from shared import topics
from shared.directory import DirectoryEntry, key_entity, task_entity
from shared.events import (
    ApiKeyPublished,
    ProgressReportSubmitted,
    TaskAssignmentPublished,
    TaskConditionChanged,
    new_event_id,
)
from shared.kafka import MessagePosition, Outcome, PoisonMessage
from shared.vocabulary import ACCEPTING_REPORTS, TaskStatus, UnitRole

log = structlog.get_logger(__name__)


class UnknownTask(PoisonMessage):
    """A report names a task the catalog does not hold."""


class UnknownUnit(PoisonMessage):
    """A report names a unit the catalog does not hold."""


def mark_processed(session: Session, event_id: uuid.UUID, position: MessagePosition) -> bool:
    """Record the event as processed; False if it already was (a redelivery)."""
    inserted = session.execute(
        insert(ProcessedEvent)
        .values(
            event_id=event_id,
            topic=position.topic,
            partition=position.partition,
            offset=position.offset,
        )
        .on_conflict_do_nothing(index_elements=[ProcessedEvent.event_id])
        .returning(ProcessedEvent.event_id)
    ).first()
    return inserted is not None


def lock_task(session: Session, code: str) -> Task | None:
    """The task, locked until the transaction ends and read as of the lock; None if unknown.

    Every decision about a task (a workflow action, a report being applied) starts here:
    lock, then decide. A copy already in the session (loaded earlier in the request, or kept
    from an earlier transaction, since sessions do not expire on commit) is refreshed from
    the locked row, so no rule is checked against a state someone else has since changed.
    """
    return session.execute(
        select(Task)
        .where(Task.code == code)
        .with_for_update(of=Task)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def apply_report(
    session: Session,
    event: ProgressReportSubmitted,
    *,
    position: MessagePosition,
    now: dt.datetime,
) -> Outcome:
    """Store a report in the task's history and update the task's state and light."""
    if not mark_processed(session, event.event_id, position):
        return Outcome.DUPLICATE
    task = lock_task(session, event.task_code)
    if task is None:
        raise UnknownTask(f"未知任务 (unknown task): {event.task_code}")
    unit = session.execute(select(Unit).where(Unit.name == event.unit)).scalar_one_or_none()
    if unit is None:
        raise UnknownUnit(f"未知单位 (unknown unit): {event.unit}")
    role = next((a.role for a in task.assignments if a.unit_id == unit.id), "none")
    if role == "none":
        # Intake authorised it against the directory it had; keep the record, flag the drift.
        log.warning("report.unit_no_longer_assigned", task=task.code, unit=unit.name)
    report = event.report
    period = period_for_report(task, period=report.period, submitted_at=event.occurred_at)
    session.add(
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
    task.last_report_at = max(filter(None, (task.last_report_at, event.occurred_at)))
    metrics.REPORTS_APPLIED.labels(role).inc()
    reevaluate(session, task, now=now)
    return Outcome.APPLIED


def reevaluate(
    session: Session, task: Task, *, now: dt.datetime, policy: LightPolicy | None = None
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
        session.add(
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
    outbox.add(
        session,
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


def scan_due_tasks(session: Session, *, now: dt.datetime, batch_size: int) -> int:
    """Re-evaluate tasks whose next evaluation time has come; safe across replicas."""
    tasks: Sequence[Task] = (
        session.execute(
            select(Task)
            .where(Task.next_evaluation_at <= now)
            .order_by(Task.next_evaluation_at)
            .limit(batch_size)
            .with_for_update(skip_locked=True, of=Task)
        )
        .scalars()
        .all()
    )
    for task in tasks:
        reevaluate(session, task, now=now)
    return len(tasks)


def key_entry(key: ApiKey, *, now: dt.datetime) -> ApiKeyPublished | None:
    """A key's directory entry; None once revoked (published as a tombstone)."""
    if key.revoked_at is not None:
        return None
    return ApiKeyPublished(
        event_id=new_event_id(),
        occurred_at=now,
        key_id=key.key_id,
        key_hash=key.key_hash,
        role=key.role,
        unit=key.unit.name if key.unit else None,
        expires_at=key.expires_at,
        revoked=False,
    )


def assignment_entry(task: Task, *, now: dt.datetime) -> TaskAssignmentPublished:
    """A task's directory entry."""
    return TaskAssignmentPublished(
        event_id=new_event_id(),
        occurred_at=now,
        task_code=task.code,
        lead_units=task.lead_units,
        co_units=task.co_units,
        accepting_reports=task.status in ACCEPTING_REPORTS,
    )


def publish_key(session: Session, key: ApiKey, *, now: dt.datetime) -> None:
    """Queue one key's directory entry (a tombstone once it is revoked)."""
    outbox.add(
        session, topic=topics.DIRECTORY, key=key_entity(key.key_id), event=key_entry(key, now=now)
    )


def publish_assignment(session: Session, task: Task, *, now: dt.datetime) -> None:
    """Queue one task's directory entry."""
    outbox.add(
        session,
        topic=topics.DIRECTORY,
        key=task_entity(task.code),
        event=assignment_entry(task, now=now),
    )


def _content(entry: DirectoryEntry | None) -> dict[str, Any] | None:
    """What an entry says, without the envelope that differs on every publication."""
    return None if entry is None else entry.model_dump(exclude={"event_id", "occurred_at"})


def reconcile_directory(
    session: Session, published: Mapping[str, DirectoryEntry], *, now: dt.datetime
) -> int:
    """Queue only the directory entries the topic does not hold as they are now.

    `published` is the topic's current state (its last value per key). Keys and tasks
    whose entry differs, is missing, or is live on the topic but no longer here (a revoked
    or deleted key, a deleted task) are queued, tombstones for the latter; entities with a
    change still waiting in the outbox are left to it. The rows are locked and read again
    before queueing, so a concurrent revocation is never overtaken by an older value.
    Returns how many entries were queued.
    """
    pending = set(
        session.execute(
            select(OutboxMessage.key).where(
                OutboxMessage.topic == topics.DIRECTORY, OutboxMessage.published_at.is_(None)
            )
        ).scalars()
    )
    stale_keys: set[int] = set()
    stale_tasks: set[int] = set()
    current: set[str] = set()
    for key in session.execute(select(ApiKey)).scalars():
        entity = key_entity(key.key_id)
        current.add(entity)
        if _content(key_entry(key, now=now)) != _content(published.get(entity)):
            stale_keys.add(key.id)
    for task in session.execute(select(Task)).scalars():
        entity = task_entity(task.code)
        current.add(entity)
        if _content(assignment_entry(task, now=now)) != _content(published.get(entity)):
            stale_tasks.add(task.id)
    queued = 0
    if stale_keys:
        for key in session.execute(
            select(ApiKey)
            .where(ApiKey.id.in_(stale_keys))
            .with_for_update(of=ApiKey)
            .execution_options(populate_existing=True)
        ).scalars():
            if key_entity(key.key_id) not in pending:
                publish_key(session, key, now=now)
                queued += 1
    if stale_tasks:
        for task in session.execute(
            select(Task)
            .where(Task.id.in_(stale_tasks))
            .with_for_update(of=Task)
            .execution_options(populate_existing=True)
        ).scalars():
            if task_entity(task.code) not in pending:
                publish_assignment(session, task, now=now)
                queued += 1
    for entity in sorted(published.keys() - current - pending):
        outbox.add(session, topic=topics.DIRECTORY, key=entity, event=None)
        queued += 1
    return queued
