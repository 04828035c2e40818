"""Clocks and Asia/Shanghai day boundaries: every service reads time through a `Clock`.

Every deadline in Duban is a calendar date in Asia/Shanghai: a task due 2022-12-31 is on
time until 2022-12-31 23:59:59.999999 +08:00 and overdue from 2023-01-01 00:00 +08:00.
The helpers here are the only place that turns dates into instants, so the rule lives once.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class NaiveDatetimeError(ValueError):
    """A datetime without a timezone reached the domain core."""


def require_aware(value: datetime, name: str = "datetime") -> datetime:
    """Return `value` unchanged, or raise NaiveDatetimeError if it has no UTC offset."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value


def shanghai_date(instant: datetime) -> date:
    """The Asia/Shanghai calendar date on which `instant` falls."""
    return require_aware(instant, "instant").astimezone(SHANGHAI).date()


def start_of_day(day: date) -> datetime:
    """00:00 of `day` in Asia/Shanghai."""
    # Built from wall-clock fields, not by adding timedeltas to an aware datetime: Python
    # does wall-clock arithmetic within one tzinfo, which would be wrong across the
    # 1986-1991 Chinese DST transitions that tzdata still carries.
    return datetime.combine(day, time.min, tzinfo=SHANGHAI)


def end_of_day(day: date) -> datetime:
    """The last representable instant of `day` in Asia/Shanghai (23:59:59.999999)."""
    return datetime.combine(day, time.max, tzinfo=SHANGHAI)


def start_of_next_day(day: date) -> datetime:
    """00:00 of the day after `day` in Asia/Shanghai: the instant a date deadline is missed."""
    return start_of_day(day + timedelta(days=1))


@runtime_checkable
class Clock(Protocol):
    """Something that tells the time; always timezone-aware."""

    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


class SystemClock:
    """The machine's clock, in UTC."""

    def now(self) -> datetime:
        """The current instant in UTC."""
        return datetime.now(tz=UTC)


class FixedClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, at: datetime) -> None:
        self._at = require_aware(at, "at")
        # A demo or test may move the clock while the API and the scan read it.
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The instant the clock was last set to."""
        with self._lock:
            return self._at

    def set(self, at: datetime) -> None:
        """Move the clock to `at` (forwards or backwards)."""
        require_aware(at, "at")
        with self._lock:
            self._at = at

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by `delta` and return the new instant."""
        with self._lock:
            self._at = self._at + delta
            return self._at


class OffsetClock:
    """Another clock shifted by a fixed offset, so a demo can replay a past year in real time."""

    def __init__(self, offset: timedelta, base: Clock | None = None) -> None:
        self.offset = offset
        self._base: Clock = base if base is not None else SystemClock()

    @classmethod
    def starting_at(cls, instant: datetime, base: Clock | None = None) -> OffsetClock:
        """A clock that reads `instant` now and then runs at the base clock's pace."""
        source: Clock = base if base is not None else SystemClock()
        return cls(require_aware(instant, "instant") - source.now(), base=source)

    def now(self) -> datetime:
        """The base clock's instant plus the offset."""
        return require_aware(self._base.now(), "base clock time") + self.offset
