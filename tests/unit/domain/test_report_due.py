"""The owed report is computed once: the red reason and the tracker's report_due_at agree.

The light's `report_missing` reason counts days from a due date; `report_due_at` (what the
tracker sends the notifier) is the end of that same date. Both come from `owed_report`, so
they agree on every day, across month ends, quarter ends and the end of a reporting span.
"""

from __future__ import annotations

import datetime as dt
import re
from datetime import date, timedelta

import pytest

from services.tracker.assessment import assess
from services.tracker.domain.cadence import Cadence, ReportPeriod, report_periods
from services.tracker.domain.lights import (
    Evaluation,
    LightPolicy,
    ReasonCode,
    TaskSnapshot,
)
from services.tracker.orm import Task
from shared.clock import end_of_day, shanghai_date, start_of_day
from shared.vocabulary import DeadlineKind, TaskStatus

from ._support import light_of, owed_report, policy, sh, task

DAYS = re.compile(r"逾期 (\d+) 天")


def _days_in(evaluation: Evaluation) -> int | None:
    reasons = [r for r in evaluation.reasons if r.code is ReasonCode.REPORT_MISSING]
    if not reasons:
        return None
    match = DAYS.search(reasons[0].text_zh)
    assert match is not None, reasons[0].text_zh
    return int(match.group(1))


def _assert_agree(snapshot: TaskSnapshot, now: dt.datetime, policy: LightPolicy) -> None:
    result = light_of(snapshot, now=now, policy=policy)
    owed = owed_report(snapshot, now=now, policy=policy)
    context = f"now={now.isoformat()} snapshot={snapshot}"
    if owed is None:
        assert result.report_due_at is None, context
        assert _days_in(result) is None, context
        return
    assert result.report_due_at == end_of_day(owed.due_date), context
    missed_days = _days_in(result)
    if now > result.report_due_at:
        # Red for the report: its day count runs from report_due_at's date.
        assert missed_days == (shanghai_date(now) - shanghai_date(result.report_due_at)).days
    else:
        assert missed_days is None, context
        assert result.next_evaluation_at is not None
        assert result.next_evaluation_at <= start_of_day(owed.due_date + timedelta(days=1))


SPANS = [
    # (kind, cadence, due, summary_due)
    (DeadlineKind.CONTINUOUS, None, None, date(2022, 12, 31)),  # 年内持续推进
    (DeadlineKind.CONTINUOUS, None, None, None),  # 长期坚持
    (DeadlineKind.CONTINUOUS, Cadence.QUARTERLY, None, date(2022, 12, 31)),
    (DeadlineKind.COMPLETE, Cadence.MONTHLY, date(2022, 9, 30), None),
    (DeadlineKind.PROGRESS, Cadence.QUARTERLY, date(2022, 11, 15), None),
]


@pytest.mark.parametrize(("kind", "cadence", "due", "summary_due"), SPANS)
@pytest.mark.parametrize("due_day", [5, 31])
def test_reason_and_report_due_at_agree_every_day(
    kind: DeadlineKind,
    cadence: Cadence | None,
    due: date | None,
    summary_due: date | None,
    due_day: int,
) -> None:
    rules = policy(report_due_day=due_day)
    monthly = list(report_periods(Cadence.MONTHLY, date(2022, 1, 1), date(2022, 12, 31)))
    quarterly = list(report_periods(Cadence.QUARTERLY, date(2022, 1, 1), date(2022, 12, 31)))
    received_sets: list[frozenset[ReportPeriod]] = [
        frozenset(),
        frozenset(monthly[:2] + quarterly[:1]),  # Jan, Feb, Q1
        frozenset(monthly[:11] + quarterly[:3]),  # all but December / Q4
        frozenset(monthly + quarterly),  # the whole year
    ]
    for received in received_sets:
        snapshot = task(
            deadline_kind=kind,
            cadence=cadence,
            due_date=due,
            summary_due=summary_due,
            received_periods=received,
            latest_percent=50,
        )
        day = date(2022, 1, 1)
        while day <= date(2023, 3, 10):
            for now in (sh(day.year, day.month, day.day), sh(day.year, day.month, day.day, 23, 59)):
                _assert_agree(snapshot, now, rules)
            day += timedelta(days=1)


def test_a_year_long_task_owes_nothing_after_its_year() -> None:
    year = frozenset(report_periods(Cadence.MONTHLY, date(2022, 1, 1), date(2022, 12, 31)))
    snapshot = task(
        deadline_kind=DeadlineKind.CONTINUOUS,
        due_date=None,
        summary_due=date(2022, 12, 31),
        received_periods=year,
    )
    result = light_of(snapshot, now=sh(2023, 3, 1))
    assert (result.report_due_at, _days_in(result)) == (None, None)
    # Without December's report it is still owed, and red, into the next year.
    short = task(
        deadline_kind=DeadlineKind.CONTINUOUS,
        due_date=None,
        summary_due=date(2022, 12, 31),
        received_periods=year - {ReportPeriod.parse("2022-12")},
    )
    result = light_of(short, now=sh(2023, 1, 9))
    assert result.report_due_at == end_of_day(date(2023, 1, 5))
    assert _days_in(result) == 4


def test_finished_tasks_owe_no_report() -> None:
    for status in (TaskStatus.COMPLETION_REQUESTED, TaskStatus.CLOSED):
        snapshot = task(status=status, deadline_kind=DeadlineKind.CONTINUOUS)
        assert light_of(snapshot, now=sh(2022, 6, 1)).report_due_at is None


def _stored(**fields: object) -> Task:
    values: dict[str, object] = {
        "code": "T-1",
        "text": "持续优化营商环境",
        "deadline_text": "年内持续推进",
        "deadline_kind": "continuous",
        "start_date": date(2022, 1, 1),
        "due_date": None,
        "extended_due_date": None,
        "summary_due": date(2022, 12, 31),
        "cadence": "monthly",
        "status": "in_progress",
        "percent": 0,
        "last_report_at": None,
        "last_report_has_blockers": False,
        "reported_periods": [],
        "created_at": sh(2022, 1, 1),
    }
    values.update(fields)
    return Task(**values)


@pytest.mark.parametrize(
    "reported",
    [
        [],
        ["2022-01", "2022-02", "2022-03"],
        [f"2022-{m:02d}" for m in range(1, 12)],
        [f"2022-{m:02d}" for m in range(1, 13)],
    ],
)
def test_the_stored_task_sends_the_date_its_reason_counts_from(reported: list[str]) -> None:
    stored = _stored(reported_periods=reported)
    day = date(2022, 3, 25)
    while day <= date(2023, 2, 10):
        now = sh(day.year, day.month, day.day, 12)
        assessment = assess(stored, now=now)
        missing = [r for r in assessment.reasons if "月报逾期" in r]
        if assessment.report_due_at is None:
            assert not missing, (day, assessment)
        elif now > assessment.report_due_at:
            match = DAYS.search(missing[0])
            assert match is not None
            lag = (day - shanghai_date(assessment.report_due_at)).days
            assert int(match.group(1)) == lag, (day, assessment)
        else:
            assert not missing, (day, assessment)
        day += timedelta(days=1)
