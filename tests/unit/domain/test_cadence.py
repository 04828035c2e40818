"""Reporting cadence: periods, due dates, and which report is owed."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from services.tracker.domain.cadence import (
    Cadence,
    DueRule,
    ReportPeriod,
    due_report,
    filed_on_time,
    report_periods,
)
from shared.clock import NaiveDatetimeError

from ._support import sh, utc

M = Cadence.MONTHLY
Q = Cadence.QUARTERLY


def month(key: str) -> ReportPeriod:
    return ReportPeriod.parse(key)


@pytest.mark.parametrize(
    ("cadence", "day", "start", "end", "key", "label"),
    [
        (M, date(2022, 3, 15), date(2022, 3, 1), date(2022, 3, 31), "2022-03", "2022年3月"),
        (M, date(2023, 2, 10), date(2023, 2, 1), date(2023, 2, 28), "2023-02", "2023年2月"),
        (M, date(2024, 2, 29), date(2024, 2, 1), date(2024, 2, 29), "2024-02", "2024年2月"),
        (M, date(2100, 2, 1), date(2100, 2, 1), date(2100, 2, 28), "2100-02", "2100年2月"),
        (M, date(2022, 12, 31), date(2022, 12, 1), date(2022, 12, 31), "2022-12", "2022年12月"),
        (Q, date(2022, 1, 1), date(2022, 1, 1), date(2022, 3, 31), "2022-Q1", "2022年第1季度"),
        (Q, date(2022, 5, 31), date(2022, 4, 1), date(2022, 6, 30), "2022-Q2", "2022年第2季度"),
        (Q, date(2022, 9, 30), date(2022, 7, 1), date(2022, 9, 30), "2022-Q3", "2022年第3季度"),
        (Q, date(2022, 12, 31), date(2022, 10, 1), date(2022, 12, 31), "2022-Q4", "2022年第4季度"),
    ],
)
def test_period_containing_a_day(
    cadence: Cadence, day: date, start: date, end: date, key: str, label: str
) -> None:
    period = ReportPeriod.containing(cadence, day)
    assert (period.start, period.end, period.cadence) == (start, end, cadence)
    assert period.key == key
    assert period.label_zh == label
    assert ReportPeriod.parse(key) == period


@pytest.mark.parametrize(
    "key", ["2022-13", "2022-00", "2022-Q5", "2022-Q0", "22-03", "2022/03", ""]
)
def test_bad_period_keys_are_rejected(key: str) -> None:
    with pytest.raises(ValueError, match="report period key"):
        ReportPeriod.parse(key)


def test_misaligned_periods_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="not a monthly period"):
        ReportPeriod(date(2022, 3, 15), date(2022, 4, 14), M)
    with pytest.raises(ValueError, match="not a quarterly period"):
        ReportPeriod(date(2022, 2, 1), date(2022, 4, 30), Q)


def test_next_period_crosses_year_ends() -> None:
    assert month("2022-12").next() == month("2023-01")
    assert month("2024-01").next() == month("2024-02")
    assert ReportPeriod.parse("2022-Q4").next() == ReportPeriod.parse("2023-Q1")


@pytest.mark.parametrize(
    ("key", "due_day", "due"),
    [
        ("2022-01", 5, date(2022, 2, 5)),
        ("2022-03", 5, date(2022, 4, 5)),
        ("2022-12", 5, date(2023, 1, 5)),
        ("2022-Q1", 5, date(2022, 4, 5)),
        ("2022-Q4", 5, date(2023, 1, 5)),
        # Month ends: a due day past the month's end is its last day (Jan 31 -> Feb 28/29).
        ("2023-01", 31, date(2023, 2, 28)),
        ("2024-01", 31, date(2024, 2, 29)),
        ("2024-01", 30, date(2024, 2, 29)),
        ("2024-01", 29, date(2024, 2, 29)),
        ("2024-01", 28, date(2024, 2, 28)),
        ("2022-03", 31, date(2022, 4, 30)),
        ("2022-Q1", 31, date(2022, 4, 30)),
        ("2022-Q2", 31, date(2022, 7, 31)),
    ],
)
def test_report_due_dates(key: str, due_day: int, due: date) -> None:
    period = ReportPeriod.parse(key)
    assert period.report_due_date(DueRule(due_day=due_day)) == due
    assert period.report_missed_from(DueRule(due_day=due_day)) == sh(
        due.year, due.month, due.day
    ) + timedelta(days=1)


@pytest.mark.parametrize("due_day", [0, 32, -1])
def test_bad_due_days_are_rejected(due_day: int) -> None:
    with pytest.raises(ValueError, match="due_day"):
        month("2022-01").report_due_date(DueRule(due_day=due_day))


def test_periods_overlapping_the_task_include_partial_first_and_last() -> None:
    periods = list(report_periods(M, date(2022, 3, 31), date(2022, 6, 1)))
    assert [p.key for p in periods] == ["2022-03", "2022-04", "2022-05", "2022-06"]
    quarters = list(report_periods(Q, date(2022, 2, 15), date(2022, 12, 31)))
    assert [p.key for p in quarters] == ["2022-Q1", "2022-Q2", "2022-Q3", "2022-Q4"]


def test_endless_task_periods_stop_at_until() -> None:
    periods = list(report_periods(M, date(2023, 11, 20), None, until=date(2024, 2, 29)))
    assert [p.key for p in periods] == ["2023-11", "2023-12", "2024-01", "2024-02"]


def test_first_report_is_owed_but_not_missed_before_its_due_date() -> None:
    owed = due_report(M, date(2022, 1, 1), sh(2022, 1, 20), [])
    assert owed is not None
    assert owed.period == month("2022-01")
    assert owed.due_date == date(2022, 2, 5)
    assert owed.missed_from == sh(2022, 2, 6)
    assert (owed.missed, owed.days_missed, owed.missed_count) == (False, 0, 0)
    assert owed.text_zh == "2022年1月月报应于2月5日前报送"


def test_report_due_at_shanghai_midnight_not_utc_midnight() -> None:
    # 2022-02-05 23:59:59 +08:00 is 15:59:59 UTC: still on time.
    on_time = due_report(M, date(2022, 1, 1), utc(2022, 2, 5, 15, 59, 59), [])
    late = due_report(M, date(2022, 1, 1), utc(2022, 2, 5, 16, 0, 0), [])
    assert on_time is not None and not on_time.missed
    assert late is not None and late.missed and late.days_missed == 1


def test_missed_report_counts_days_from_its_due_date() -> None:
    owed = due_report(M, date(2022, 1, 1), sh(2022, 2, 17, 9), [])
    assert owed is not None
    assert (owed.missed, owed.days_missed, owed.missed_count) == (True, 12, 1)
    assert owed.text_zh == "2022年1月月报逾期 12 天"


def test_several_missed_reports_report_the_oldest_and_count_all() -> None:
    # Jan and Feb due (Feb 5, Mar 5) and missed; Mar due Apr 5 is not yet missed on Apr 5.
    owed = due_report(M, date(2022, 1, 1), sh(2022, 4, 5, 23, 59), [])
    assert owed is not None
    assert owed.period == month("2022-01")
    assert (owed.days_missed, owed.missed_count) == (59, 2)
    assert owed.text_zh == "2022年1月月报逾期 59 天（累计缺报 2 期）"


def test_a_gap_after_received_reports_is_what_is_owed() -> None:
    received = {month("2022-01"), month("2022-02"), month("2022-04")}
    owed = due_report(M, date(2022, 1, 1), sh(2022, 5, 10), received)
    assert owed is not None
    assert owed.period == month("2022-03")
    assert (owed.days_missed, owed.missed_count) == (35, 1)


def test_when_all_due_reports_are_in_the_next_one_is_owed() -> None:
    received = {month("2022-01"), month("2022-02")}
    owed = due_report(M, date(2022, 1, 1), sh(2022, 3, 10), received)
    assert owed is not None
    assert owed.period == month("2022-03")
    assert not owed.missed
    assert owed.missed_from == sh(2022, 4, 6)


def test_nothing_is_owed_once_every_period_to_the_end_is_in() -> None:
    received = set(report_periods(M, date(2022, 10, 1), date(2022, 12, 31)))
    assert (
        due_report(M, date(2022, 10, 1), sh(2023, 3, 1), received, end=date(2022, 12, 31)) is None
    )


def test_reports_outside_the_task_or_of_another_cadence_do_not_count() -> None:
    received = {month("2021-12"), ReportPeriod.parse("2022-Q1")}
    owed = due_report(M, date(2022, 1, 1), sh(2022, 2, 6), received)
    assert owed is not None and owed.missed and owed.period == month("2022-01")


def test_last_partial_period_is_owed_after_the_end_date() -> None:
    owed = due_report(
        M,
        date(2022, 1, 1),
        sh(2023, 1, 6),
        set(report_periods(M, date(2022, 1, 1), date(2022, 11, 30))),
        end=date(2022, 12, 15),
    )
    assert owed is not None
    assert owed.period == month("2022-12")
    assert owed.due_date == date(2023, 1, 5)
    assert owed.days_missed == 1


def test_quarterly_reports_are_due_the_fifth_after_the_quarter() -> None:
    owed = due_report(Q, date(2022, 1, 1), sh(2022, 4, 5, 23, 59), [])
    assert owed is not None and not owed.missed
    owed = due_report(Q, date(2022, 1, 1), sh(2022, 4, 16), [])
    assert owed is not None and owed.missed
    assert owed.text_zh == "2022年第1季度季报逾期 11 天"
    received = {ReportPeriod.parse("2022-Q1")}
    owed = due_report(Q, date(2022, 1, 1), sh(2022, 6, 30), received)
    assert owed is not None and owed.period == ReportPeriod.parse("2022-Q2")
    assert owed.due_date == date(2022, 7, 5)


def test_leap_year_february_report_with_month_end_due_day() -> None:
    # Reports due on the last day of the next month: January 2024 is due 2024-02-29.
    owed = due_report(M, date(2024, 1, 1), sh(2024, 2, 29, 23, 59), [], rule=DueRule(due_day=31))
    assert owed is not None and not owed.missed and owed.due_date == date(2024, 2, 29)
    owed = due_report(M, date(2024, 1, 1), sh(2024, 3, 1), [], rule=DueRule(due_day=31))
    assert owed is not None and owed.missed and owed.days_missed == 1
    owed = due_report(M, date(2023, 1, 1), sh(2023, 3, 1), [], rule=DueRule(due_day=31))
    assert owed is not None and owed.due_date == date(2023, 2, 28) and owed.days_missed == 1


def test_task_starting_on_a_month_end_owes_that_month() -> None:
    owed = due_report(M, date(2023, 1, 31), sh(2023, 2, 1), [])
    assert owed is not None and owed.period == month("2023-01")


def test_due_report_rejects_naive_now() -> None:
    with pytest.raises(NaiveDatetimeError):
        due_report(M, date(2022, 1, 1), datetime(2022, 2, 6), [])  # noqa: DTZ001


@pytest.mark.parametrize(
    ("filed_at", "on_time"),
    [
        (sh(2022, 4, 5, 23, 59), True),
        (sh(2022, 4, 5, 23, 59, 59), True),
        (utc(2022, 4, 5, 15, 59, 59), True),
        (utc(2022, 4, 5, 16, 0, 0), False),
        (sh(2022, 4, 6, 0, 0), False),
        (sh(2022, 3, 20), True),
    ],
)
def test_report_filed_the_minute_before_the_deadline_is_on_time(
    filed_at: datetime, on_time: bool
) -> None:
    assert filed_on_time(month("2022-03"), filed_at) is on_time
