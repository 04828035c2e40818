"""China's working calendar: statutory holidays and the 调休 makeup working days.

The days come from the `chinesecalendar` package (the State Council's yearly notices), and
from a local override file for years the package does not know yet (or to correct it):

```yaml
years:
  2027:
    holidays: [2027-01-01, 2027-02-15]   # days off that would otherwise be working days
    workdays: [2027-02-07]               # makeup working days (调休上班) on a weekend
```

A year listed in the file is known, and the file wins over the package for its days. A
year known to neither is not guessed at: Monday to Friday are taken as working days, and
`year_known` says so (the services log it and set `duban_calendar_year_known{year}` to 0).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.metrics import CALENDAR_YEAR_KNOWN
from shared.yamlmarks import MarkedFileError, Problem, load_marked

log = structlog.get_logger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")
_LIBRARY_YEARS = range(
    min(day.year for day in chinese_calendar.holidays),
    max(day.year for day in chinese_calendar.holidays) + 1,
)
# Adding working days never needs to look further than this (the longest break is ~9 days).
_SEARCH_LIMIT = 366


class CalendarError(MarkedFileError):
    """The calendar override file is malformed; the message names the file and line."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        super().__init__("working calendar overrides", problems)


class _YearOverride(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    holidays: tuple[dt.date, ...] = ()
    workdays: tuple[dt.date, ...] = Field(default=(), description="makeup working days (调休)")


class _Overrides(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    years: dict[int, _YearOverride] = Field(default_factory=dict)


class WorkCalendar:
    """Which days are working days in mainland China, and the arithmetic on them."""

    def __init__(
        self,
        *,
        holidays: Iterable[dt.date] = (),
        workdays: Iterable[dt.date] = (),
        override_years: Iterable[int] = (),
        use_library: bool = True,
    ) -> None:
        self._holidays = frozenset(holidays)
        self._workdays = frozenset(workdays)
        self._override_years = frozenset(override_years)
        self._use_library = use_library
        for day in self._holidays | self._workdays:
            if day.year not in self._override_years:
                raise ValueError(f"{day.isoformat()} is outside the years the overrides list")
        clash = self._holidays & self._workdays
        if clash:
            raise ValueError(f"{min(clash).isoformat()} is both a holiday and a working day")

    def year_known(self, year: int) -> bool:
        """Whether the calendar knows the year's holidays (else it treats Mon–Fri as working)."""
        return year in self._override_years or (self._use_library and year in _LIBRARY_YEARS)

    def is_working_day(self, day: dt.date) -> bool:
        """A working day: a weekday that is no holiday, or a makeup working day (调休)."""
        if day.year in self._override_years:
            if day in self._holidays:
                return False
            if day in self._workdays:
                return True
            if not self._use_library or day.year not in _LIBRARY_YEARS:
                return day.weekday() < 5
        if self._use_library and day.year in _LIBRARY_YEARS:
            return bool(chinese_calendar.is_workday(day))
        return day.weekday() < 5

    def next_working_day(self, day: dt.date) -> dt.date:
        """`day` if it is a working day, else the first working day after it (顺延)."""
        for offset in range(_SEARCH_LIMIT):
            candidate = day + dt.timedelta(days=offset)
            if self.is_working_day(candidate):
                return candidate
        raise ValueError(f"no working day within a year of {day.isoformat()}")

    def add_working_days(self, day: dt.date, count: int) -> dt.date:
        """The `count`-th working day after `day` (`N个工作日内` from `day`); `day` for 0."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        current = day
        for _ in range(count):
            current = self.next_working_day(current + dt.timedelta(days=1))
        return current

    def working_time(
        self,
        at: dt.datetime,
        start: dt.time,
        end: dt.time,
        *,
        zone: ZoneInfo = SHANGHAI,
    ) -> dt.datetime:
        """The earliest instant at or after `at` within working hours [start, end) of a
        working day, in `zone` (quiet hours: a notice planned outside them waits for this)."""
        if at.tzinfo is None:
            raise ValueError("at must be timezone-aware")
        if not start < end:
            raise ValueError("working hours must start before they end")
        local = at.astimezone(zone)
        day = local.date()
        if self.is_working_day(day) and start <= local.time() < end:
            return at
        if not (self.is_working_day(day) and local.time() < start):
            day = self.next_working_day(day + dt.timedelta(days=1))
        return dt.datetime.combine(day, start, tzinfo=zone)

    def is_working_time(
        self, at: dt.datetime, start: dt.time, end: dt.time, *, zone: ZoneInfo = SHANGHAI
    ) -> bool:
        """Whether `at` falls within working hours [start, end) of a working day."""
        return self.working_time(at, start, end, zone=zone) == at

    def report_year(self, year: int) -> bool:
        """Publish whether `year` is known (metric, and a warning when it is not)."""
        known = self.year_known(year)
        CALENDAR_YEAR_KNOWN.labels(str(year)).set(1 if known else 0)
        if not known:
            log.warning(
                "calendar.year_unknown",
                year=year,
                detail=(
                    "法定节假日与调休安排未知：暂按周一至周五为工作日计算；"
                    "请在 DUBAN_CALENDAR_OVERRIDES 文件中补充该年安排"
                ),
            )
        return known


def parse_overrides(text: str, source: str = "<calendar>") -> WorkCalendar:
    """A calendar from override YAML text; raise CalendarError naming the line of a problem."""
    document = load_marked(text, source, "working calendar overrides")
    data = document.data if document.data is not None else {}
    if not isinstance(data, dict):
        raise CalendarError([document.problem((), "the file must be a YAML mapping")])
    try:
        overrides = _Overrides.model_validate(data)
    except ValidationError as exc:
        raise CalendarError(document.problems_from(exc)) from exc
    holidays: list[dt.date] = []
    workdays: list[dt.date] = []
    problems: list[Problem] = []
    for year, entry in overrides.years.items():
        for kind, days in (("holidays", entry.holidays), ("workdays", entry.workdays)):
            for index, day in enumerate(days):
                if day.year != year:
                    problems.append(
                        document.problem(("years", year, kind, index), f"{day} is not in {year}")
                    )
        both = set(entry.holidays) & set(entry.workdays)
        if both:
            problems.append(
                document.problem(
                    ("years", year, "workdays"), f"{min(both)} is both a holiday and a workday"
                )
            )
        holidays += entry.holidays
        workdays += entry.workdays
    if problems:
        raise CalendarError(problems)
    return WorkCalendar(holidays=holidays, workdays=workdays, override_years=overrides.years)


def load_calendar(path: str | Path | None) -> WorkCalendar:
    """The working calendar: the package's years, plus the override file if one is given."""
    if path is None:
        return WorkCalendar()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalendarError([Problem(str(file), 1, 1, "", f"cannot read: {exc}")]) from exc
    return parse_overrides(text, str(file))


@lru_cache(maxsize=1)
def standard_calendar() -> WorkCalendar:
    """The package's calendar with no overrides."""
    return WorkCalendar()
