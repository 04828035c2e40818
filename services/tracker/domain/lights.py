"""Lights (红黄绿蓝灰灯) for a task, with reasons and the next instant the result can change.

Rules (defaults in `LightPolicy`), evaluated in Asia/Shanghai calendar days:

- Grey: closed (销号).
- Blue: completion requested, awaiting sign-off. Blue wins over red: a task reported
  complete is the office's to verify, so it is never red for lateness while it waits.
- Red: past the due date in force (extended if granted) and not closed; or a required
  periodic report missing past its report due date; or a milestone past its due date and
  not done. Red suppresses every yellow reason.
- Yellow: due (or a milestone due) within `due_soon_days` days; or behind the pro-rata
  schedule (序时进度) by more than `behind_schedule_points`; or the latest report names
  blockers (梗阻障碍).
- Green: otherwise. Not-started and returned tasks are lit like tasks in progress.

`days_overdue` counts Shanghai calendar days after the missed date (due 12-31, on 01-01 it
is 1), the largest over all red reasons; 0 unless red.

`next_evaluation_at` is the earliest instant at which *any* part of the Evaluation (light,
reasons, days_overdue, red_since) would differ with no new input, or None if it never will.
Day counters are part of the result, so a red task, or a yellow one whose reason carries a
day count or a point gap, is revisited at the next Asia/Shanghai midnight; every other
change (entering the window, a report coming due, the gap crossing the threshold, the
deadline passing) is scheduled for its exact instant. All changes fall on Shanghai midnights.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from fractions import Fraction

from services.tracker.domain.cadence import (
    DEFAULT_REPORT_DUE_DAY,
    Cadence,
    ReportDue,
    ReportPeriod,
    due_report,
)
from shared.clock import (
    end_of_day,
    require_aware,
    shanghai_date,
    start_of_day,
    start_of_next_day,
)
from shared.vocabulary import DeadlineKind, Light, TaskStatus


class ReasonCode(StrEnum):
    """Machine-readable reason for a light."""

    TASK_OVERDUE = "task_overdue"
    MILESTONE_OVERDUE = "milestone_overdue"
    REPORT_MISSING = "report_missing"
    DUE_SOON = "due_soon"
    MILESTONE_DUE_SOON = "milestone_due_soon"
    BEHIND_SCHEDULE = "behind_schedule"
    BLOCKERS_REPORTED = "blockers_reported"
    COMPLETION_REQUESTED = "completion_requested"
    CLOSED = "closed"


@dataclass(frozen=True)
class LightReason:
    """Why a task has its light: a code for machines and a Chinese sentence for people."""

    code: ReasonCode
    text_zh: str

    def __str__(self) -> str:
        return self.text_zh


@dataclass(frozen=True)
class MilestoneSnapshot:
    """A milestone (节点) as the light rules see it."""

    name: str
    due_date: date | None
    done: bool = False


@dataclass(frozen=True, kw_only=True)
class LightPolicy:
    """Tunable light rules; the defaults are in docs/domain.md §5 Lights."""

    due_soon_days: int = 15
    behind_schedule_points: int | float = 20
    pro_rata_kinds: frozenset[DeadlineKind] = frozenset(
        {DeadlineKind.COMPLETE, DeadlineKind.PROGRESS}
    )
    default_continuous_cadence: Cadence | None = Cadence.MONTHLY
    report_due_day: int = DEFAULT_REPORT_DUE_DAY
    blockers_are_yellow: bool = True
    light_milestones: bool = True
    missing_percent_counts_as_zero: bool = True

    def __post_init__(self) -> None:
        if self.due_soon_days < 0:
            raise ValueError(f"due_soon_days must be >= 0, got {self.due_soon_days}")
        if not 0 <= self.behind_schedule_points < 100:
            raise ValueError(
                f"behind_schedule_points must be in [0, 100), got {self.behind_schedule_points}"
            )
        if not 1 <= self.report_due_day <= 31:
            raise ValueError(f"report_due_day must be 1..31, got {self.report_due_day}")


DEFAULT_POLICY = LightPolicy()


@dataclass(frozen=True, kw_only=True)
class TaskSnapshot:
    """Everything the light rules read about one task; build it from the tracker's tables.

    `received_periods` holds the periods whose report stands (a returned report does not
    count). `cadence` is the one the deadline phrase states, if the light rules know it.
    `summary_due` is the year-end summary date of a year-long continuous task; it ends the
    reporting span of a task with no due date. `start_date` falls back to the Shanghai date
    of `created_at`.
    """

    status: TaskStatus
    deadline_kind: DeadlineKind
    start_date: date | None
    due_date: date | None
    created_at: datetime
    extended_due: date | None = None
    summary_due: date | None = None
    cadence: Cadence | None = None
    latest_percent: float | None = None
    latest_report_at: datetime | None = None
    latest_report_has_blockers: bool = False
    received_periods: Collection[ReportPeriod] = field(default_factory=frozenset)
    milestones: Sequence[MilestoneSnapshot] = ()

    def __post_init__(self) -> None:
        require_aware(self.created_at, "created_at")
        if self.latest_report_at is not None:
            require_aware(self.latest_report_at, "latest_report_at")
        if self.latest_percent is not None and not 0 <= self.latest_percent <= 100:
            raise ValueError(f"latest_percent must be within 0..100, got {self.latest_percent}")
        if self.extended_due is not None and self.due_date is None:
            raise ValueError("extended_due set on a task without a due_date")
        # Normalise to hashable, immutable containers so snapshots compare and hash by value.
        object.__setattr__(self, "received_periods", frozenset(self.received_periods))
        object.__setattr__(self, "milestones", tuple(self.milestones))

    @property
    def effective_due(self) -> date | None:
        """The due date in force: the granted extension if any, else the original."""
        return self.extended_due if self.extended_due is not None else self.due_date

    @property
    def effective_start(self) -> date:
        """The start date, or the day the task was created when the document gives none."""
        return self.start_date if self.start_date is not None else shanghai_date(self.created_at)

    @property
    def reporting_end(self) -> date | None:
        """The last day periodic reports are owed for: the due date in force, else the
        year-end summary date; None for a task that reports with no end (长期坚持)."""
        due = self.effective_due
        return due if due is not None else self.summary_due


@dataclass(frozen=True)
class Evaluation:
    """A task's light at one instant, why, and when to look again."""

    light: Light
    reasons: tuple[LightReason, ...]
    days_overdue: int
    next_evaluation_at: datetime | None
    # When the current red spell began (00:00 after the earliest missed deadline); escalation
    # counts "red for N days" from here. None unless red.
    red_since: datetime | None = None
    # End of the day by which the owed report (the one a REPORT_MISSING reason counts from)
    # is or was due; None when no report is owed. The tracker sends it to the notifier.
    report_due_at: datetime | None = None

    @property
    def summary(self) -> str:
        """`red: 月报逾期 12 天；已逾期 3 天` for logs and events."""
        if not self.reasons:
            return self.light.value
        return f"{self.light.value}: {'；'.join(r.text_zh for r in self.reasons)}"


@dataclass(frozen=True)
class _RedFinding:
    reason: LightReason
    deadline: date
    days: int


def _days_left_text(days_left: int, subject: str) -> str:
    if days_left == 0:
        return f"{subject}今日截止"
    return f"{subject}距截止 {days_left} 天"


def _as_fraction(value: int | float) -> Fraction:
    # Through str so a reported 33.3 is 333/10, not its binary approximation.
    return Fraction(str(value))


def _format_points(gap: Fraction) -> str:
    if gap.denominator == 1:
        return str(gap.numerator)
    tenths = math.floor(gap * 10 + Fraction(1, 2))
    return f"{tenths // 10}.{tenths % 10}"


@dataclass(frozen=True)
class _ProRata:
    """序时进度 over [start, due]: share of whole days elapsed, as a percentage."""

    start: date
    due: date
    percent: Fraction

    @property
    def total_days(self) -> int:
        return (self.due - self.start).days + 1

    def gap_on(self, day: date) -> Fraction:
        elapsed = min(max((day - self.start).days, 0), self.total_days)
        return Fraction(100 * elapsed, self.total_days) - self.percent

    def first_day_behind(self, threshold: Fraction) -> date | None:
        """The first day on which the gap exceeds `threshold`, if on or before the due date."""
        # gap(k) = 100k/total - p > T  <=>  k > (T + p) * total / 100
        elapsed_needed = math.floor((threshold + self.percent) * self.total_days / 100) + 1
        if elapsed_needed >= self.total_days:
            return None
        return self.start + timedelta(days=elapsed_needed)

    def next_text_change(self, today: date) -> date | None:
        """The first day after `today` on which the displayed gap differs, up to the due date."""
        shown = _format_points(self.gap_on(today))
        day = today + timedelta(days=1)
        while day <= self.due:
            if _format_points(self.gap_on(day)) != shown:
                return day
            day += timedelta(days=1)
        return None


def reporting_cadence(
    snapshot: TaskSnapshot, policy: LightPolicy = DEFAULT_POLICY
) -> Cadence | None:
    """The cadence the task reports at: as its phrase states, else the policy's default for a
    continuous task (docs/domain.md §4); None when it owes no periodic report."""
    if snapshot.cadence is not None:
        return snapshot.cadence
    if snapshot.deadline_kind is DeadlineKind.CONTINUOUS:
        return policy.default_continuous_cadence
    return None


def owed_report(
    snapshot: TaskSnapshot, *, now: datetime, policy: LightPolicy = DEFAULT_POLICY
) -> ReportDue | None:
    """The report the task owes at `now` (docs/domain.md §4), whatever its status.

    The one rule for it: the light's report reason and the tracker's `report_due_at` both
    come from here.
    """
    cadence = reporting_cadence(snapshot, policy)
    if cadence is None:
        return None
    return due_report(
        cadence,
        snapshot.effective_start,
        now,
        snapshot.received_periods,
        end=snapshot.reporting_end,
        due_day=policy.report_due_day,
    )


def light_of(
    snapshot: TaskSnapshot, *, now: datetime, policy: LightPolicy = DEFAULT_POLICY
) -> Evaluation:
    """The task's light at `now`, with reasons and the next instant it could change."""
    require_aware(now, "now")

    if snapshot.status is TaskStatus.CLOSED:
        return Evaluation(Light.GREY, (LightReason(ReasonCode.CLOSED, "已销号"),), 0, None)
    if snapshot.status is TaskStatus.COMPLETION_REQUESTED:
        # Explicit rule: a completion request turns the task blue even past its due date.
        # Lateness is the office's call at sign-off (close or return), not a red light.
        return Evaluation(
            Light.BLUE,
            (LightReason(ReasonCode.COMPLETION_REQUESTED, "已申请销号，待督查室核验"),),
            0,
            None,
        )

    today = shanghai_date(now)
    tomorrow = start_of_next_day(today)
    window = timedelta(days=policy.due_soon_days)
    due = snapshot.effective_due
    start = snapshot.effective_start
    red: list[_RedFinding] = []
    yellow: list[LightReason] = []
    # Instants at which the result changes on its own; the earliest becomes next_evaluation_at.
    changes: list[datetime] = []

    def watch_deadline(
        deadline: date, overdue_code: ReasonCode, soon_code: ReasonCode, subject: str
    ) -> None:
        if today > deadline:
            days = (today - deadline).days
            reason = LightReason(overdue_code, f"{subject}已逾期 {days} 天")
            red.append(_RedFinding(reason, deadline, days))
            return
        changes.append(start_of_next_day(deadline))
        days_left = (deadline - today).days
        if days_left <= policy.due_soon_days:
            yellow.append(LightReason(soon_code, _days_left_text(days_left, subject)))
            changes.append(tomorrow)
        else:
            changes.append(start_of_day(deadline - window))

    if due is not None:
        watch_deadline(due, ReasonCode.TASK_OVERDUE, ReasonCode.DUE_SOON, "")

    if policy.light_milestones:
        for milestone in snapshot.milestones:
            if milestone.done or milestone.due_date is None:
                continue
            watch_deadline(
                milestone.due_date,
                ReasonCode.MILESTONE_OVERDUE,
                ReasonCode.MILESTONE_DUE_SOON,
                f"节点「{milestone.name}」",
            )

    owed = owed_report(snapshot, now=now, policy=policy)
    report_due_at = end_of_day(owed.due_date) if owed is not None else None
    if owed is not None and owed.missed:
        red.append(
            _RedFinding(
                LightReason(ReasonCode.REPORT_MISSING, owed.text_zh),
                owed.due_date,
                owed.days_missed,
            )
        )
    elif owed is not None:
        changes.append(owed.missed_from)

    if (
        snapshot.deadline_kind in policy.pro_rata_kinds
        and due is not None
        and start <= due
        and today <= due
    ):
        percent = snapshot.latest_percent
        if percent is None and policy.missing_percent_counts_as_zero:
            percent = 0
        if percent is not None:
            schedule = _ProRata(start, due, _as_fraction(percent))
            threshold = _as_fraction(policy.behind_schedule_points)
            gap = schedule.gap_on(today)
            if gap > threshold:
                yellow.append(
                    LightReason(
                        ReasonCode.BEHIND_SCHEDULE, f"序时进度落后 {_format_points(gap)} 个百分点"
                    )
                )
                change_day = schedule.next_text_change(today)
            else:
                change_day = schedule.first_day_behind(threshold)
            if change_day is not None:
                changes.append(start_of_day(change_day))

    if policy.blockers_are_yellow and snapshot.latest_report_has_blockers:
        yellow.append(LightReason(ReasonCode.BLOCKERS_REPORTED, "报告反映梗阻障碍"))

    if red:
        # Red suppresses yellow reasons. Red is absorbing without new input (time only moves
        # deadlines further into the past), so only the day counters change: tomorrow.
        first_missed = min(finding.deadline for finding in red)
        return Evaluation(
            Light.RED,
            tuple(finding.reason for finding in red),
            max(finding.days for finding in red),
            tomorrow,
            red_since=start_of_next_day(first_missed),
            report_due_at=report_due_at,
        )
    next_at = min((c for c in changes if c > now), default=None)
    if yellow:
        return Evaluation(Light.YELLOW, tuple(yellow), 0, next_at, report_due_at=report_due_at)
    return Evaluation(Light.GREEN, (), 0, next_at, report_due_at=report_due_at)
