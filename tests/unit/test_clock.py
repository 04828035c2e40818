"""Clocks and Asia/Shanghai day boundaries."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from shared.clock import (
    SHANGHAI,
    Clock,
    FixedClock,
    NaiveDatetimeError,
    OffsetClock,
    SystemClock,
    end_of_day,
    require_aware,
    shanghai_date,
    start_of_day,
    start_of_next_day,
)
from tests.unit.domain._support import sh, utc


def test_shanghai_is_the_iana_zone() -> None:
    assert SHANGHAI.key == "Asia/Shanghai"


def test_day_boundaries_are_shanghai_midnight_in_utc() -> None:
    assert start_of_day(date(2022, 12, 31)) == utc(2022, 12, 30, 16)
    assert end_of_day(date(2022, 12, 31)) == utc(2022, 12, 31, 15, 59, 59) + timedelta(
        microseconds=999_999
    )
    assert start_of_next_day(date(2022, 12, 31)) == utc(2022, 12, 31, 16)
    assert start_of_next_day(date(2022, 12, 31)) - end_of_day(date(2022, 12, 31)) == timedelta(
        microseconds=1
    )


@pytest.mark.parametrize(
    ("day", "next_day"),
    [
        (date(2023, 1, 31), date(2023, 2, 1)),
        (date(2023, 2, 28), date(2023, 3, 1)),
        (date(2024, 2, 28), date(2024, 2, 29)),
        (date(2024, 2, 29), date(2024, 3, 1)),
        (date(2100, 2, 28), date(2100, 3, 1)),
        (date(2022, 12, 31), date(2023, 1, 1)),
    ],
)
def test_start_of_next_day_across_month_and_year_ends(day: date, next_day: date) -> None:
    assert start_of_next_day(day) == sh(next_day.year, next_day.month, next_day.day)


def test_shanghai_date_flips_at_utc_1600() -> None:
    assert shanghai_date(utc(2022, 12, 31, 15, 59, 59)) == date(2022, 12, 31)
    assert shanghai_date(utc(2022, 12, 31, 16, 0, 0)) == date(2023, 1, 1)


def test_naive_datetimes_are_rejected() -> None:
    naive = datetime(2022, 1, 1)  # noqa: DTZ001
    with pytest.raises(NaiveDatetimeError, match="now must be timezone-aware"):
        require_aware(naive, "now")
    with pytest.raises(NaiveDatetimeError):
        shanghai_date(naive)
    with pytest.raises(NaiveDatetimeError):
        FixedClock(naive)
    assert issubclass(NaiveDatetimeError, ValueError)


def test_fixed_clock_stands_still_until_moved() -> None:
    clock = FixedClock(sh(2022, 3, 1))
    assert clock.now() == sh(2022, 3, 1)
    assert clock.now() == sh(2022, 3, 1)
    assert clock.advance(timedelta(days=1)) == sh(2022, 3, 2)
    clock.set(sh(2021, 1, 1))
    assert clock.now() == sh(2021, 1, 1)
    with pytest.raises(NaiveDatetimeError):
        clock.set(datetime(2022, 1, 1))  # noqa: DTZ001


def test_offset_clock_shifts_its_base() -> None:
    base = FixedClock(utc(2026, 5, 1))
    clock = OffsetClock(timedelta(days=-365 * 4), base=base)
    assert clock.now() == utc(2026, 5, 1) - timedelta(days=365 * 4)
    base.advance(timedelta(hours=1))
    assert clock.now() == utc(2026, 5, 1, 1) - timedelta(days=365 * 4)


def test_offset_clock_can_replay_from_a_chosen_instant() -> None:
    base = FixedClock(utc(2026, 5, 1))
    clock = OffsetClock.starting_at(sh(2022, 1, 1), base=base)
    assert clock.now() == sh(2022, 1, 1)
    base.advance(timedelta(minutes=5))
    assert clock.now() == sh(2022, 1, 1, 0, 5)


def test_system_clock_is_aware_and_satisfies_the_protocol() -> None:
    now = SystemClock().now()
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)
    for clock in (SystemClock(), FixedClock(sh(2022, 1, 1)), OffsetClock(timedelta(0))):
        assert isinstance(clock, Clock)
