"""Reporting cadence: which periodic report a task owes, when it is due, and when it is missed.

A period's report is due by day `due_day` (default the 5th) of the month after the period
ends, as a Shanghai date: the March report is due 4月5日 and missed from 4月6日 00:00 +08:00.
A task owes a report for every period that overlaps its active span [start, end], partial
first and last periods included.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from shared.clock import shanghai_date, start_of_next_day

DEFAULT_REPORT_DUE_DAY = 5


class Cadence(StrEnum):
    """How often a task reports progress."""

    MONTHLY = "monthly"
    QUARTERLY = "quarterly"

    @property
    def months(self) -> int:
        """Length of one period in months."""
        return 1 if self is Cadence.MONTHLY else 3

    @property
    def report_name_zh(self) -> str:
        """What the report is called in Chinese (月报 / 季报)."""
        return "月报" if self is Cadence.MONTHLY else "季报"


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def _last_day(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _period_bounds(cadence: Cadence, day: date) -> tuple[date, date]:
    first_month = day.month - (day.month - 1) % cadence.months
    end_year, end_month = _add_months(day.year, first_month, cadence.months - 1)
    return date(day.year, first_month, 1), _last_day(end_year, end_month)


_KEY_PATTERN = re.compile(r"^(?P<year>\d{4})-(?:(?P<month>\d{2})|Q(?P<quarter>[1-4]))$")


@dataclass(frozen=True, order=True)
class ReportPeriod:
    """One reporting period: a calendar month or quarter."""

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
        """Parse a period key such as `2022-03` (monthly) or `2022-Q1` (quarterly)."""
        match = _KEY_PATTERN.match(key)
        if match is None:
            raise ValueError(f"not a report period key: {key!r}")
        year = int(match["year"])
        if match["quarter"] is not None:
            return ReportPeriod.containing(
                Cadence.QUARTERLY, date(year, 3 * int(match["quarter"]) - 2, 1)
            )
        month = int(match["month"])
        if not 1 <= month <= 12:
            raise ValueError(f"not a report period key: {key!r}")
        return ReportPeriod.containing(Cadence.MONTHLY, date(year, month, 1))

    @property
    def key(self) -> str:
        """Stable identifier: `2022-03` or `2022-Q1`."""
        if self.cadence is Cadence.MONTHLY:
            return f"{self.start.year:04d}-{self.start.month:02d}"
        return f"{self.start.year:04d}-Q{(self.start.month + 2) // 3}"

    @property
    def label_zh(self) -> str:
        """Human label: `2022年3月` or `2022年第1季度`."""
        if self.cadence is Cadence.MONTHLY:
            return f"{self.start.year}年{self.start.month}月"
        return f"{self.start.year}年第{(self.start.month + 2) // 3}季度"

    def next(self) -> ReportPeriod:
        """The period that follows this one."""
        return ReportPeriod.containing(self.cadence, _day_after(self.end))

    def report_due_date(self, due_day: int = DEFAULT_REPORT_DUE_DAY) -> date:
        """Last on-time date for this period's report, clamped to the month's last day."""
        _validate_due_day(due_day)
        year, month = _add_months(self.end.year, self.end.month, 1)
        return date(year, month, min(due_day, calendar.monthrange(year, month)[1]))

    def report_missed_from(self, due_day: int = DEFAULT_REPORT_DUE_DAY) -> datetime:
        """The instant this period's report becomes missing (00:00 after the due date)."""
        return start_of_next_day(self.report_due_date(due_day))


def _day_after(day: date) -> date:
    return date.fromordinal(day.toordinal() + 1)


def _validate_due_day(due_day: int) -> None:
    if not 1 <= due_day <= 31:
        raise ValueError(f"due_day must be 1..31, got {due_day}")


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
    """The report a task currently owes."""

    period: ReportPeriod
    due_date: date
    missed_from: datetime
    missed: bool
    days_missed: int
    missed_count: int

    @property
    def text_zh(self) -> str:
        """`月报逾期 12 天`, with the count of missing periods when more than one."""
        name = self.period.cadence.report_name_zh
        if not self.missed:
            due = f"{self.due_date.month}月{self.due_date.day}日"
            return f"{self.period.label_zh}{name}应于{due}前报送"
        text = f"{name}逾期 {self.days_missed} 天"
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
    due_day: int = DEFAULT_REPORT_DUE_DAY,
) -> ReportDue | None:
    """The report owed at `now`: the oldest missing one if any, else the next one to come due.

    Returns None when every period overlapping [start, end] has been received. `received`
    should hold only reports that stand (a returned report does not count).
    """
    _validate_due_day(due_day)
    today = shanghai_date(now)
    first_unreceived: ReportPeriod | None = None
    # Terminates: each step either stops or passes a received period, and `received` is finite.
    for period in report_periods(cadence, start, end):
        if period not in received:
            first_unreceived = period
            break
    if first_unreceived is None:
        return None

    due_date = first_unreceived.report_due_date(due_day)
    missed = today > due_date
    missed_count = 0
    if missed:
        for period in report_periods(cadence, first_unreceived.start, end):
            if period.report_due_date(due_day) >= today:
                break
            if period not in received:
                missed_count += 1
    return ReportDue(
        period=first_unreceived,
        due_date=due_date,
        missed_from=start_of_next_day(due_date),
        missed=missed,
        days_missed=(today - due_date).days if missed else 0,
        missed_count=missed_count,
    )


def filed_on_time(
    period: ReportPeriod, filed_at: datetime, *, due_day: int = DEFAULT_REPORT_DUE_DAY
) -> bool:
    """Whether a report filed at `filed_at` was on time (23:59 on the due date still is)."""
    _validate_due_day(due_day)
    return shanghai_date(filed_at) <= period.report_due_date(due_day)
