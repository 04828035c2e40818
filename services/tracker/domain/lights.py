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
    Cadence,
    DueRule,
    ReportDue,
    ReportPeriod,
    due_report,
)
from services.tracker.domain.progress import (
    IndicatorProgress,
    MilestoneProgress,
    ProgressWeights,
    TaskProgress,
    format_percent,
    task_progress,
)
from shared.clock import (
    end_of_day,
    require_aware,
    shanghai_date,
    start_of_day,
    start_of_next_day,
)
from shared.vocabulary import DeadlineKind, Light, TargetDirection, TaskStatus
from shared.workcal import WorkCalendar


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


@dataclass(frozen=True)
class TargetSnapshot:
    """A numeric target as the light rules see it; `actual` None until a report gives one."""

    indicator: str
    value: float
    actual: float | None
    direction: TargetDirection = TargetDirection.AT_LEAST


@dataclass(frozen=True, kw_only=True)
class LightPolicy:
    """The light and reporting rules in force, built from the supervision policy file
    (services/tracker/policy/default_supervision.yaml; docs/domain.md §5).

    `calendar` moves report due dates off non-working days (顺延) and keeps 截止 off them;
    None counts plain calendar days. `version` names the policy (its fingerprint).
    """

    due_soon_days: int
    behind_schedule_points: int | float
    pro_rata_kinds: frozenset[DeadlineKind]
    default_continuous_cadence: Cadence | None
    report_due_day: int
    week_due_days: int
    report_grace_days: int
    blockers_are_yellow: bool
    light_milestones: bool
    missing_percent_counts_as_zero: bool
    weights: ProgressWeights
    about_band_percent: float
    calendar: WorkCalendar | None = field(default=None, compare=False)
    version: str = ""

    def __post_init__(self) -> None:
        if self.due_soon_days < 0:
            raise ValueError(f"due_soon_days must be >= 0, got {self.due_soon_days}")
        if not 0 <= self.behind_schedule_points < 100:
            raise ValueError(
                f"behind_schedule_points must be in [0, 100), got {self.behind_schedule_points}"
            )
        if not 1 <= self.report_due_day <= 31:
            raise ValueError(f"report_due_day must be 1..31, got {self.report_due_day}")
        if not 0 <= self.about_band_percent < 100:
            raise ValueError(
                f"about_band_percent must be in [0, 100), got {self.about_band_percent}"
            )
        self.due_rule()  # validates the rest of the reporting rule

    def due_rule(self, due_day: int | None = None) -> DueRule:
        """When reports fall due; `due_day` is a document's own (每月N日前) if it gives one."""
        return DueRule(
            due_day=due_day if due_day is not None else self.report_due_day,
            week_due_days=self.week_due_days,
            grace_days=self.report_grace_days,
            calendar=self.calendar,
        )


@dataclass(frozen=True, kw_only=True)
class TaskSnapshot:
    """Everything the light rules read about one task; build it from the tracker's tables.

    `received_periods` holds the periods whose report stands (a returned report does not
    count). `cadence` is the one the deadline phrase states; `report_due_day` the due day it
    states (每月5日前), if any. `latest_percent` is the lead unit's reported percent, None
    before its first report.
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
    report_due_day: int | None = None
    latest_percent: float | None = None
    latest_report_at: datetime | None = None
    latest_report_has_blockers: bool = False
    received_periods: Collection[ReportPeriod] = field(default_factory=frozenset)
    milestones: Sequence[MilestoneSnapshot] = ()
    targets: Sequence[TargetSnapshot] = ()

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
        object.__setattr__(self, "targets", tuple(self.targets))

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
    # The task's progress and the figures it was made of (what the schedule compared).
    progress: TaskProgress | None = field(default=None, compare=False)

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


def _date_zh(day: date) -> str:
    return f"{day.month}月{day.day}日"


def _days_left_text(
    days_left: int, subject: str, deadline: date, calendar: WorkCalendar | None
) -> str:
    # 截止 is said only of a working day; a deadline on a rest day is named with its date.
    if calendar is not None and not calendar.is_working_day(deadline):
        when = f"（{_date_zh(deadline)}，休息日）"
        if days_left == 0:
            return f"{subject}今日为完成时限{when}"
        return f"{subject}距完成时限 {days_left} 天{when}"
    if days_left == 0:
        return f"{subject}今日截止"
    return f"{subject}距截止 {days_left} 天"


def _as_fraction(value: int | float) -> Fraction:
    # Through str so a reported 33.3 is 333/10, not its binary approximation.
    return Fraction(str(value))


@dataclass(frozen=True)
class _ProRata:
    """序时进度 over [start, due]: share of whole days elapsed, as a percentage."""

    start: date
    due: date
    progress: TaskProgress
    percent: Fraction

    @property
    def total_days(self) -> int:
        return (self.due - self.start).days + 1

    def expected_on(self, day: date) -> Fraction:
        elapsed = min(max((day - self.start).days, 0), self.total_days)
        return Fraction(100 * elapsed, self.total_days)

    def gap_on(self, day: date) -> Fraction:
        return self.expected_on(day) - self.percent

    def text_on(self, day: date) -> str:
        """`序时进度落后 25 个百分点（自报 60%，序时 85%）`: the gap and the figures behind it."""
        return (
            f"序时进度落后 {format_percent(self.gap_on(day))} 个百分点"
            f"（{self.progress.figures_zh}，序时 {format_percent(self.expected_on(day))}%）"
        )

    def first_day_behind(self, threshold: Fraction) -> date | None:
        """The first day on which the gap exceeds `threshold`, if on or before the due date."""
        # gap(k) = 100k/total - p > T  <=>  k > (T + p) * total / 100
        elapsed_needed = math.floor((threshold + self.percent) * self.total_days / 100) + 1
        if elapsed_needed >= self.total_days:
            return None
        return self.start + timedelta(days=elapsed_needed)

    def next_text_change(self, today: date) -> date | None:
        """The first day after `today` on which the reason reads differently, up to the due date."""
        shown = self.text_on(today)
        day = today + timedelta(days=1)
        while day <= self.due:
            if self.text_on(day) != shown:
                return day
            day += timedelta(days=1)
        return None


def progress_of(snapshot: TaskSnapshot, policy: LightPolicy, today: date) -> TaskProgress:
    """The task's progress and its figures, by the policy's weights (docs/domain.md §5).

    A milestone counts once it is done or its date has passed: one not yet due does not pull
    progress down before its time, as a target with no actual yet does not.
    """
    return task_progress(
        reported_percent=snapshot.latest_percent,
        targets=[
            IndicatorProgress(
                name=t.indicator,
                target=t.value,
                actual=t.actual,
                direction=t.direction,
                band_percent=policy.about_band_percent,
            )
            for t in snapshot.targets
            if t.value > 0
        ],
        milestones=[
            MilestoneProgress(name=m.name, done=m.done)
            for m in snapshot.milestones
            if m.done or (m.due_date is not None and m.due_date < today)
        ],
        weights=policy.weights,
    )


def reporting_cadence(snapshot: TaskSnapshot, policy: LightPolicy) -> Cadence | None:
    """The cadence the task reports at: as its phrase states, else the policy's default for a
    continuous task (docs/domain.md §4); None when it owes no periodic report."""
    if snapshot.cadence is not None:
        return snapshot.cadence
    if snapshot.deadline_kind is DeadlineKind.CONTINUOUS:
        return policy.default_continuous_cadence
    return None


def owed_report(snapshot: TaskSnapshot, *, now: datetime, policy: LightPolicy) -> ReportDue | None:
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
        rule=policy.due_rule(snapshot.report_due_day),
    )


def light_of(snapshot: TaskSnapshot, *, now: datetime, policy: LightPolicy) -> Evaluation:
    """The task's light at `now`, with reasons and the next instant it could change."""
    require_aware(now, "now")
    today = shanghai_date(now)
    progress = progress_of(snapshot, policy, today)

    if snapshot.status is TaskStatus.CLOSED:
        return Evaluation(
            Light.GREY, (LightReason(ReasonCode.CLOSED, "已销号"),), 0, None, progress=progress
        )
    if snapshot.status is TaskStatus.COMPLETION_REQUESTED:
        # Explicit rule: a completion request turns the task blue even past its due date.
        # Lateness is the office's call at sign-off (close or return), not a red light.
        return Evaluation(
            Light.BLUE,
            (LightReason(ReasonCode.COMPLETION_REQUESTED, "已申请销号，待督查室核验"),),
            0,
            None,
            progress=progress,
        )

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
            text = _days_left_text(days_left, subject, deadline, policy.calendar)
            yellow.append(LightReason(soon_code, text))
            changes.append(tomorrow)
        else:
            changes.append(start_of_day(deadline - window))

    if due is not None:
        watch_deadline(due, ReasonCode.TASK_OVERDUE, ReasonCode.DUE_SOON, "")

    for milestone in snapshot.milestones:
        if not milestone.done and milestone.due_date is not None and milestone.due_date >= today:
            # The day after its date it starts to count in progress.
            changes.append(start_of_next_day(milestone.due_date))
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
    report_due_at = end_of_day(owed.last_accepted) if owed is not None else None
    if owed is not None and owed.missed:
        red.append(
            _RedFinding(
                LightReason(ReasonCode.REPORT_MISSING, owed.text_zh),
                owed.last_accepted,
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
        percent = progress.percent
        if percent is None and policy.missing_percent_counts_as_zero:
            percent = Fraction(0)
        if percent is not None:
            schedule = _ProRata(start, due, progress, percent)
            threshold = _as_fraction(policy.behind_schedule_points)
            gap = schedule.gap_on(today)
            if gap > threshold:
                yellow.append(LightReason(ReasonCode.BEHIND_SCHEDULE, schedule.text_on(today)))
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
            progress=progress,
        )
    next_at = min((c for c in changes if c > now), default=None)
    if yellow:
        return Evaluation(
            Light.YELLOW, tuple(yellow), 0, next_at, report_due_at=report_due_at, progress=progress
        )
    return Evaluation(Light.GREEN, (), 0, next_at, report_due_at=report_due_at, progress=progress)
