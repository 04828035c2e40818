"""China's working calendar: holidays, 调休, overrides, and arithmetic on working days."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from shared.workcal import SHANGHAI, CalendarError, WorkCalendar, load_calendar, parse_overrides


def test_holidays_and_makeup_days_come_from_the_package() -> None:
    calendar = WorkCalendar()
    assert not calendar.is_working_day(dt.date(2022, 10, 5))  # 国庆
    assert calendar.is_working_day(dt.date(2022, 10, 8))  # Saturday, 调休
    assert not calendar.is_working_day(dt.date(2022, 2, 1))  # 春节
    assert calendar.is_working_day(dt.date(2022, 1, 29))  # Saturday, 调休
    assert calendar.next_working_day(dt.date(2022, 10, 1)) == dt.date(2022, 10, 8)
    assert calendar.next_working_day(dt.date(2022, 10, 10)) == dt.date(2022, 10, 10)


def test_adding_working_days_skips_holidays() -> None:
    calendar = WorkCalendar()
    assert calendar.add_working_days(dt.date(2022, 9, 29), 1) == dt.date(2022, 9, 30)
    assert calendar.add_working_days(dt.date(2022, 9, 29), 2) == dt.date(2022, 10, 8)
    assert calendar.add_working_days(dt.date(2022, 9, 29), 0) == dt.date(2022, 9, 29)
    with pytest.raises(ValueError):
        calendar.add_working_days(dt.date(2022, 9, 29), -1)


def test_working_time_waits_for_the_next_working_morning() -> None:
    calendar = WorkCalendar()
    start, end = dt.time(8, 30), dt.time(18, 0)
    saturday = dt.datetime(2022, 10, 15, 10, tzinfo=SHANGHAI)
    monday = dt.datetime(2022, 10, 17, 8, 30, tzinfo=SHANGHAI)
    assert calendar.working_time(saturday, start, end) == monday
    late = dt.datetime(2022, 10, 17, 19, tzinfo=SHANGHAI)
    assert calendar.working_time(late, start, end) == dt.datetime(
        2022, 10, 18, 8, 30, tzinfo=SHANGHAI
    )
    early = dt.datetime(2022, 10, 17, 3, tzinfo=SHANGHAI)
    assert calendar.working_time(early, start, end) == monday
    inside = dt.datetime(2022, 10, 17, 9, tzinfo=SHANGHAI)
    assert calendar.is_working_time(inside, start, end)
    assert not calendar.is_working_time(saturday, start, end)


def test_an_override_file_covers_a_year_the_package_does_not_know(tmp_path: Path) -> None:
    path = tmp_path / "calendar.yaml"
    path.write_text(
        "years:\n  2099:\n    holidays: [2099-01-01, 2099-01-02]\n    workdays: [2099-01-04]\n",
        encoding="utf-8",
    )
    calendar = load_calendar(path)
    assert calendar.year_known(2099)
    assert not calendar.is_working_day(dt.date(2099, 1, 1))
    assert calendar.is_working_day(dt.date(2099, 1, 4))  # a Sunday made a working day
    assert not calendar.is_working_day(dt.date(2099, 1, 3))  # a plain Saturday
    assert calendar.is_working_day(dt.date(2022, 10, 8))  # the package's years still hold


def test_an_unknown_year_is_reported_by_metric() -> None:
    calendar = WorkCalendar()
    assert calendar.report_year(2099) is False
    assert REGISTRY.get_sample_value("duban_calendar_year_known", {"year": "2099"}) == 0
    assert calendar.report_year(2022) is True
    assert REGISTRY.get_sample_value("duban_calendar_year_known", {"year": "2022"}) == 1


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("years:\n  2099:\n    holidays: [2098-05-01]\n", ":3:"),
        ("years:\n  2099:\n    holiday: [2099-05-01]\n", ":3:"),
        ("years:\n  2099:\n    holidays: [2099-05-01]\n    workdays: [2099-05-01]\n", ":4:"),
        ("- 2099-05-01\n", ":1:"),
    ],
)
def test_bad_override_files_name_the_line(text: str, where: str) -> None:
    with pytest.raises(CalendarError) as caught:
        parse_overrides(text, "calendar.yaml")
    assert f"calendar.yaml{where}" in str(caught.value)
