"""Adapter between the stored task and the pure light rules in `domain.lights`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from services.tracker.domain.cadence import Cadence, ReportPeriod, due_report
from services.tracker.domain.lights import (
    DeadlineKind,
    LightPolicy,
    MilestoneSnapshot,
    TaskSnapshot,
    light_of,
)
from services.tracker.domain.progress import (
    IndicatorProgress,
    MilestoneProgress,
    ProgressNode,
    rolled_up_percent,
)
from services.tracker.domain.workflow import TaskStatus
from services.tracker.orm import Task
from shared.clock import end_of_day, shanghai_date

DEFAULT_POLICY = LightPolicy()


@dataclass(frozen=True)
class Assessment:
    """A task's light at an instant, why, and when it could next change."""

    light: str
    reasons: tuple[str, ...]
    days_overdue: int
    next_evaluation_at: dt.datetime | None
    red_since: dt.datetime | None
    report_due_at: dt.datetime | None


def cadence_of(task: Task, policy: LightPolicy = DEFAULT_POLICY) -> Cadence | None:
    """The task's reporting cadence: stated by the document, else monthly if continuous."""
    if task.cadence in {c.value for c in Cadence}:
        return Cadence(task.cadence)
    if task.deadline_kind == DeadlineKind.CONTINUOUS:
        return policy.default_continuous_cadence
    return None


def _periods(task: Task, cadence: Cadence | None) -> frozenset[ReportPeriod]:
    if cadence is None:
        return frozenset()
    periods = set()
    for key in task.reported_periods:
        try:
            period = ReportPeriod.parse(key)
        except ValueError:
            continue
        if period.cadence is cadence:
            periods.add(period)
    return frozenset(periods)


def progress_of(task: Task) -> float | None:
    """Milestones and indicators roll up (weighted mean, as Decidim's result trees) into the
    task's progress; without them the lead unit's reported percent stands."""
    nodes: list[ProgressNode] = [
        MilestoneProgress(name=m.text, done=m.done_at is not None) for m in task.milestones
    ]
    nodes += [
        IndicatorProgress(name=t.indicator, target=float(t.value), actual=float(t.actual or 0))
        for t in task.targets
        if t.value > 0
    ]
    if nodes and task.last_report_at is not None:
        return rolled_up_percent(nodes)
    return float(task.percent) if task.last_report_at is not None else None


def snapshot_of(task: Task, policy: LightPolicy = DEFAULT_POLICY) -> TaskSnapshot:
    """What the light rules need to know about a stored task."""
    cadence = cadence_of(task, policy)
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
        created_at=task.created_at,
        cadence=cadence,
        latest_percent=progress_of(task),
        latest_report_at=task.last_report_at,
        latest_report_has_blockers=task.last_report_has_blockers,
        received_periods=_periods(task, cadence),
        milestones=tuple(
            MilestoneSnapshot(name=m.text, due_date=m.due_date, done=m.done_at is not None)
            for m in task.milestones
        ),
    )


def period_for_report(task: Task, *, period: str | None, submitted_at: dt.datetime) -> str | None:
    """The reporting period a report answers: as stated, else the one owed when it was filed."""
    cadence = cadence_of(task)
    if cadence is None:
        return period
    if period is not None:
        return period
    owed = due_report(
        cadence,
        task.start_date,
        submitted_at,
        _periods(task, cadence),
        end=_report_end(task),
    )
    if owed is not None and owed.period.start <= shanghai_date(submitted_at):
        return owed.period.key
    return ReportPeriod.containing(cadence, shanghai_date(submitted_at)).key


def _report_end(task: Task) -> dt.date | None:
    return task.extended_due_date or task.due_date or task.summary_due


def report_due_at(task: Task, *, now: dt.datetime) -> dt.datetime | None:
    """End of the day by which the earliest report not yet received is due, if one is owed."""
    cadence = cadence_of(task)
    if cadence is None or task.status in ("completion_requested", "closed"):
        return None
    owed = due_report(cadence, task.start_date, now, _periods(task, cadence), end=_report_end(task))
    return end_of_day(owed.due_date) if owed is not None else None


def assess(task: Task, *, now: dt.datetime, policy: LightPolicy = DEFAULT_POLICY) -> Assessment:
    """Evaluate the task's light now."""
    evaluation = light_of(snapshot_of(task, policy), now=now, policy=policy)
    return Assessment(
        light=evaluation.light.value,
        reasons=tuple(r.text_zh for r in evaluation.reasons),
        days_overdue=evaluation.days_overdue,
        next_evaluation_at=evaluation.next_evaluation_at,
        red_since=evaluation.red_since,
        report_due_at=report_due_at(task, now=now),
    )
