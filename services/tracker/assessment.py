"""Adapter between the stored task and the pure light rules in `domain.lights`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from services.tracker.domain.cadence import ReportPeriod
from services.tracker.domain.lights import (
    LightPolicy,
    MilestoneSnapshot,
    TargetSnapshot,
    TaskSnapshot,
    light_of,
    owed_report,
    reporting_cadence,
)
from services.tracker.orm import Task
from services.tracker.policy.supervision import current_rules
from shared.clock import shanghai_date
from shared.vocabulary import Cadence, DeadlineKind, Light, TargetDirection, TaskStatus


@dataclass(frozen=True)
class Assessment:
    """A task's light at an instant, why, and when it could next change."""

    light: Light
    reasons: tuple[str, ...]
    days_overdue: int
    next_evaluation_at: dt.datetime | None
    red_since: dt.datetime | None
    report_due_at: dt.datetime | None
    # The task's progress (the weighted figures), None before it has any figure.
    progress: float | None
    # The policy version (fingerprint) that lit it.
    policy_version: str


def _periods(task: Task) -> frozenset[ReportPeriod]:
    # Keys of another cadence never equal a period the task owes, so they need no filter.
    periods = set()
    for key in task.reported_periods:
        try:
            periods.add(ReportPeriod.parse(key))
        except ValueError:
            continue
    return frozenset(periods)


def _stated_cadence(task: Task) -> Cadence | None:
    try:
        return Cadence(task.cadence) if task.cadence is not None else None
    except ValueError:
        return None


def _direction(value: str) -> TargetDirection:
    try:
        return TargetDirection(value)
    except ValueError:
        return TargetDirection.AT_LEAST


def snapshot_of(task: Task) -> TaskSnapshot:
    """What the light rules need to know about a stored task."""
    try:
        kind = DeadlineKind(task.deadline_kind)
    except ValueError:
        kind = DeadlineKind.UNKNOWN
    return TaskSnapshot(
        status=TaskStatus(task.status),
        deadline_kind=kind,
        start_date=task.start_date,
        due_date=task.due_date,
        extended_due=task.extended_due_date,
        summary_due=task.summary_due,
        created_at=task.created_at,
        cadence=_stated_cadence(task),
        report_due_day=task.report_due_day,
        latest_percent=task.percent if task.last_report_at is not None else None,
        latest_report_at=task.last_report_at,
        latest_report_has_blockers=task.last_report_has_blockers,
        received_periods=_periods(task),
        milestones=tuple(
            MilestoneSnapshot(name=m.text, due_date=m.due_date, done=m.done_at is not None)
            for m in task.milestones
        ),
        targets=tuple(
            TargetSnapshot(
                indicator=t.indicator,
                value=float(t.value),
                actual=float(t.actual) if t.actual is not None else None,
                direction=_direction(t.direction),
            )
            for t in task.targets
        ),
    )


def period_for_report(
    task: Task,
    *,
    period: str | None,
    submitted_at: dt.datetime,
    policy: LightPolicy | None = None,
) -> str | None:
    """The reporting period a report answers: as stated, else the one owed when it was filed."""
    rules = policy or current_rules()
    snapshot = snapshot_of(task)
    cadence = reporting_cadence(snapshot, rules)
    if cadence is None or period is not None:
        return period
    owed = owed_report(snapshot, now=submitted_at, policy=rules)
    if owed is not None and owed.period.start <= shanghai_date(submitted_at):
        return owed.period.key
    return ReportPeriod.containing(cadence, shanghai_date(submitted_at)).key


def assess(task: Task, *, now: dt.datetime, policy: LightPolicy | None = None) -> Assessment:
    """Evaluate the task's light now, by `policy` (default: the policy in force)."""
    rules = policy or current_rules()
    evaluation = light_of(snapshot_of(task), now=now, policy=rules)
    progress = evaluation.progress.percent if evaluation.progress is not None else None
    return Assessment(
        light=evaluation.light,
        reasons=tuple(r.text_zh for r in evaluation.reasons),
        days_overdue=evaluation.days_overdue,
        next_evaluation_at=evaluation.next_evaluation_at,
        red_since=evaluation.red_since,
        report_due_at=evaluation.report_due_at,
        progress=round(float(progress), 1) if progress is not None else None,
        policy_version=rules.version,
    )
