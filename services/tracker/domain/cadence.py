"""Reporting cadence: which periodic report a task owes, when it is due, and when it is missed.

Periods (`Cadence` in shared/vocabulary.py): ISO weeks (Monday to Sunday), and calendar
months, two-month blocks (Jan–Feb, Mar–Apr …), quarters, halves and years. A period's report
is due, by a `DueRule`:

- for a month-based period, by day `due_day` of the month after the period ends (clamped to
  the month's length): the March report and the first-quarter report by 4月5日;
- for a week, `week_due_days` days after the Sunday that ends it (1: the Monday after);
- with a working calendar, a due date that falls on a non-working day moves to the next
  working day (顺延): a report due 10月5日 (国庆) is due 10月8日 (a 调休 working day);
- `grace_days` working days (calendar days without a calendar) after the due date the report
  still counts as on time; it is missed from 00:00 after the last of them.

A task owes a report for every period that overlaps its active span [start, end], partial
first and last periods included.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from shared.clock import shanghai_date, start_of_next_day
from shared.vocabulary import Cadence
from shared.workcal import WorkCalendar

__all__ = [
    "Cadence",
    "DueRule",
    "ReportDue",
    "ReportPeriod",
    "due_report",
    "filed_on_time",
    "report_periods",
]


@dataclass(frozen=True, kw_only=True)
class DueRule:
    """When a period's report falls due. The tracker builds it from the supervision policy
    (and a document's `每月N日前`); these defaults are only the arithmetic's."""

    due_day: int = 5
    week_due_days: int = 1
    grace_days: int = 0
    calendar: WorkCalendar | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.due_day <= 31:
            raise ValueError(f"due_day must be 1..31, got {self.due_day}")
        if not 0 <= self.week_due_days <= 7:
            raise ValueError(f"week_due_days must be 0..7, got {self.week_due_days}")
        if self.grace_days < 0:
            raise ValueError(f"grace_days must be >= 0, got {self.grace_days}")


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def _last_day(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _period_bounds(cadence: Cadence, day: date) -> tuple[date, date]:
    months = cadence.months
    if months is None:
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=6)
    first_month = day.month - (day.month - 1) % months
    end_year, end_month = _add_months(day.year, first_month, months - 1)
    return date(day.year, first_month, 1), _last_day(end_year, end_month)


_KEY_PATTERN = re.compile(
    r"^(?P<year>\d{4})(?:-(?:(?P<month>\d{2})|Q(?P<quarter>[1-4])|B(?P<bimonth>[1-6])"
    r"|H(?P<half>[12])|W(?P<week>\d{2})))?$"
)
_HALF_LABELS = {1: "上半年", 2: "下半年"}


@dataclass(frozen=True, order=True)
class ReportPeriod:
    """One reporting period: an ISO week, a month, two months, a quarter, a half or a year."""

    start: date
    end: date
    cadence: Cadence

    def __post_init__(self) -> None:
        # Only aligned periods are comparable and hashable as the same report; a stray
        # "Mar 15 - Apr 14" period would never match what the tracker expects.
        if _period_bounds(self.cadence, self.start) != (self.start, self.end):
            raise ValueError(
                f"not a {self.cadence} period: {self.start.isoformat()}..{self.end.isoformat()}"
            )

    @staticmethod
    def containing(cadence: Cadence, day: date) -> ReportPeriod:
        """The period of `cadence` that contains `day`."""
        start, end = _period_bounds(cadence, day)
        return ReportPeriod(start=start, end=end, cadence=cadence)

    @staticmethod
    def parse(key: str) -> ReportPeriod:
        """Parse a period key: `2022-W05`, `2022-03`, `2022-B2`, `2022-Q1`, `2022-H1`, `2022`."""
        match = _KEY_PATTERN.match(key)
        if match is None:
            raise ValueError(f"not a report period key: {key!r}")
        year = int(match["year"])
        try:
            if match["week"] is not None:
                return ReportPeriod.containing(
                    Cadence.WEEKLY, date.fromisocalendar(year, int(match["week"]), 1)
                )
            if match["month"] is not None:
                return ReportPeriod.containing(Cadence.MONTHLY, date(year, int(match["month"]), 1))
        except ValueError as exc:
            raise ValueError(f"not a report period key: {key!r}") from exc
        if match["bimonth"] is not None:
            return ReportPeriod.containing(
                Cadence.BI_MONTHLY, date(year, 2 * int(match["bimonth"]) - 1, 1)
            )
        if match["quarter"] is not None:
            return ReportPeriod.containing(
                Cadence.QUARTERLY, date(year, 3 * int(match["quarter"]) - 2, 1)
            )
        if match["half"] is not None:
            return ReportPeriod.containing(
                Cadence.HALF_YEARLY, date(year, 6 * int(match["half"]) - 5, 1)
            )
        return ReportPeriod.containing(Cadence.YEARLY, date(year, 1, 1))

    @property
    def _index(self) -> int:
        """The period's number within its year (1-based), by its cadence."""
        months = self.cadence.months
        assert months is not None
        return (self.start.month - 1) // months + 1

    @property
    def key(self) -> str:
        """Stable identifier: `2022-W05`, `2022-03`, `2022-B2`, `2022-Q1`, `2022-H1`, `2022`."""
        year = self.start.year
        match self.cadence:
            case Cadence.WEEKLY:
                iso = self.start.isocalendar()
                return f"{iso.year:04d}-W{iso.week:02d}"
            case Cadence.MONTHLY:
                return f"{year:04d}-{self.start.month:02d}"
            case Cadence.BI_MONTHLY:
                return f"{year:04d}-B{self._index}"
            case Cadence.QUARTERLY:
                return f"{year:04d}-Q{self._index}"
            case Cadence.HALF_YEARLY:
                return f"{year:04d}-H{self._index}"
        return f"{year:04d}"

    @property
    def label_zh(self) -> str:
        """`2022年第5周`, `2022年3月`, `2022年3-4月`, `2022年第1季度`, `2022年上半年`,
        `2022年度`."""
        year = self.start.year
        match self.cadence:
            case Cadence.WEEKLY:
                iso = self.start.isocalendar()
                return f"{iso.year}年第{iso.week}周"
            case Cadence.MONTHLY:
                return f"{year}年{self.start.month}月"
            case Cadence.BI_MONTHLY:
                return f"{year}年{self.start.month}-{self.end.month}月"
            case Cadence.QUARTERLY:
                return f"{year}年第{self._index}季度"
            case Cadence.HALF_YEARLY:
                return f"{year}年{_HALF_LABELS[self._index]}"
        return f"{year}年度"

    def next(self) -> ReportPeriod:
        """The period that follows this one."""
        return ReportPeriod.containing(self.cadence, self.end + timedelta(days=1))

    def nominal_due_date(self, rule: DueRule = DueRule()) -> date:
        """The due date the rule states, before any move to a working day."""
        if self.cadence.months is None:
            return self.end + timedelta(days=rule.week_due_days)
        year, month = _add_months(self.end.year, self.end.month, 1)
        return date(year, month, min(rule.due_day, calendar.monthrange(year, month)[1]))

    def report_due_date(self, rule: DueRule = DueRule()) -> date:
        """The date this period's report is due: the rule's date, moved to the next working
        day (顺延) when the rule has a calendar and the date is not one."""
        nominal = self.nominal_due_date(rule)
        return rule.calendar.next_working_day(nominal) if rule.calendar else nominal

    def last_accepted_date(self, rule: DueRule = DueRule()) -> date:
        """The last date a report still counts as on time: the due date plus the grace days."""
        due = self.report_due_date(rule)
        if rule.calendar is not None:
            return rule.calendar.add_working_days(due, rule.grace_days)
        return due + timedelta(days=rule.grace_days)

    def report_missed_from(self, rule: DueRule = DueRule()) -> datetime:
        """The instant this period's report becomes missing (00:00 after the last day)."""
        return start_of_next_day(self.last_accepted_date(rule))


def report_periods(
    cadence: Cadence, start: date, end: date | None = None, *, until: date | None = None
) -> Iterator[ReportPeriod]:
    """Periods a task owes reports for: those overlapping [start, end], up to `until` if given.

    With neither `end` nor `until` the iterator is infinite (a 长期坚持 task).
    """
    period = ReportPeriod.containing(cadence, start)
    while (end is None or period.start <= end) and (until is None or period.start <= until):
        yield period
        period = period.next()


@dataclass(frozen=True)
class ReportDue:
    """The report a task currently owes.

    `due_date` is when it is due (already moved to a working day); `accepted_until` is the
    last day it still counts as on time (the due date plus the grace days).
    """

    period: ReportPeriod
    due_date: date
    missed_from: datetime
    missed: bool
    days_missed: int
    missed_count: int
    accepted_until: date | None = None

    @property
    def last_accepted(self) -> date:
        """The last on-time day."""
        return self.accepted_until if self.accepted_until is not None else self.due_date

    @property
    def text_zh(self) -> str:
        """`月报逾期 12 天`, with the count of missing periods when more than one."""
        name = self.period.cadence.report_name_zh
        if not self.missed:
            due = f"{self.due_date.month}月{self.due_date.day}日"
            text = f"{self.period.label_zh}{name}应于{due}前报送"
            if self.last_accepted != self.due_date:
                text += f"（宽限至{self.last_accepted.month}月{self.last_accepted.day}日）"
            return text
        text = f"{self.period.label_zh}{name}逾期 {self.days_missed} 天"
        if self.missed_count > 1:
            text += f"（累计缺报 {self.missed_count} 期）"
        return text


def due_report(
    cadence: Cadence,
    start: date,
    now: datetime,
    received: Collection[ReportPeriod],
    *,
    end: date | None = None,
    rule: DueRule = DueRule(),
) -> ReportDue | None:
    """The report owed at `now`: the oldest missing one if any, else the next one to come due.

    Returns None when every period overlapping [start, end] has been received. `received`
    should hold only reports that stand (a returned report does not count). Days missed are
    counted from the due date.
    """
    today = shanghai_date(now)
    first_unreceived: ReportPeriod | None = None
    # Terminates: each step either stops or passes a received period, and `received` is finite.
    for period in report_periods(cadence, start, end):
        if period not in received:
            first_unreceived = period
            break
    if first_unreceived is None:
        return None

    due_date = first_unreceived.report_due_date(rule)
    last_accepted = first_unreceived.last_accepted_date(rule)
    missed = today > last_accepted
    missed_count = 0
    if missed:
        for period in report_periods(cadence, first_unreceived.start, end):
            if period.last_accepted_date(rule) >= today:
                break
            if period not in received:
                missed_count += 1
    return ReportDue(
        period=first_unreceived,
        due_date=due_date,
        missed_from=start_of_next_day(last_accepted),
        missed=missed,
        days_missed=(today - due_date).days if missed else 0,
        missed_count=missed_count,
        accepted_until=last_accepted,
    )


def filed_on_time(period: ReportPeriod, filed_at: datetime, *, rule: DueRule = DueRule()) -> bool:
    """Whether a report filed at `filed_at` was on time (23:59 on the last day still is)."""
    return shanghai_date(filed_at) <= period.last_accepted_date(rule)
