"""Property-style check of next_evaluation_at over many seeded random snapshots.

For every generated (snapshot, now): the evaluation is identical (including
next_evaluation_at) everywhere in [now, next_evaluation_at), and differs at
next_evaluation_at itself, so the scan neither misses a change nor wakes for nothing.
A None means nothing changes for the next ten years.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import pytest

from services.tracker.domain.cadence import Cadence, ReportPeriod, report_periods
from services.tracker.domain.lights import (
    Evaluation,
    MilestoneSnapshot,
    TaskSnapshot,
    light_of,
)
from shared.clock import SHANGHAI, shanghai_date, start_of_day
from shared.vocabulary import DeadlineKind, TaskStatus

from ._support import policy

ONE_MICROSECOND = timedelta(microseconds=1)
CASES = 400
POLICIES = [
    policy(),
    policy(due_soon_days=0, behind_schedule_points=0, report_due_day=31),
    policy(due_soon_days=30, behind_schedule_points=12.5, default_continuous_cadence=None),
]


def _random_day(rng: random.Random, around: date, spread: int) -> date:
    return around + timedelta(days=rng.randint(-spread, spread))


def _random_instant(rng: random.Random, day: date) -> datetime:
    if rng.random() < 0.25:
        return start_of_day(day)  # exactly midnight, the instant most rules flip
    seconds = rng.randint(0, 86_399)
    return start_of_day(day) + timedelta(seconds=seconds, microseconds=rng.randint(0, 999_999))


def _random_snapshot(rng: random.Random) -> TaskSnapshot:
    # Around leap day 2024 and year ends, so month-end arithmetic gets exercised.
    anchor = rng.choice(
        [date(2022, 1, 1), date(2023, 12, 20), date(2024, 2, 10), date(2024, 12, 1)]
    )
    start = _random_day(rng, anchor, 60)
    kind = rng.choice(list(DeadlineKind))
    due: date | None = None
    if kind is not DeadlineKind.UNKNOWN and rng.random() < 0.85:
        due = start + timedelta(days=rng.randint(-5, 500))
    extended = due + timedelta(days=rng.randint(1, 120)) if due and rng.random() < 0.2 else None
    cadence = rng.choice([None, None, Cadence.MONTHLY, Cadence.QUARTERLY])
    # A year-long continuous task ends its reporting on its year-end summary date.
    summary_due = date(start.year, 12, 31) if due is None and rng.random() < 0.5 else None
    received: set[ReportPeriod] = set()
    for reporting in (cadence, Cadence.MONTHLY):
        if reporting is not None:
            for period in report_periods(reporting, start, None, until=start + timedelta(days=700)):
                if rng.random() < 0.7:
                    received.add(period)
    milestones = [
        MilestoneSnapshot(
            f"节点{i}",
            _random_day(rng, start, 200) if rng.random() < 0.9 else None,
            done=rng.random() < 0.3,
        )
        for i in range(rng.randint(0, 2))
    ]
    percent = rng.choice([None, 0, 5, 12.5, 33.3, 50, 64, 99.9, 100, rng.randint(0, 100)])
    status = rng.choice(
        [
            TaskStatus.NOT_STARTED,
            TaskStatus.IN_PROGRESS,
            TaskStatus.IN_PROGRESS,
            TaskStatus.RETURNED,
            TaskStatus.COMPLETION_REQUESTED,
            TaskStatus.CLOSED,
        ]
    )
    return TaskSnapshot(
        status=status,
        deadline_kind=kind,
        start_date=start if rng.random() < 0.9 else None,
        due_date=due,
        extended_due=extended,
        summary_due=summary_due,
        cadence=cadence,
        latest_percent=percent,
        latest_report_has_blockers=rng.random() < 0.2,
        received_periods=received,
        milestones=milestones,
        created_at=_random_instant(rng, start),
    )


def _result(evaluation: Evaluation) -> tuple[object, ...]:
    return (
        evaluation.light,
        evaluation.reasons,
        evaluation.days_overdue,
        evaluation.red_since,
        evaluation.report_due_at,
    )


@pytest.mark.parametrize("seed", range(5))
def test_result_is_constant_until_next_evaluation_at_and_changes_there(seed: int) -> None:
    rng = random.Random(seed)
    changed_count = 0
    for _ in range(CASES):
        snapshot = _random_snapshot(rng)
        rules = rng.choice(POLICIES)
        reference = snapshot.due_date or snapshot.effective_start
        now = _random_instant(rng, _random_day(rng, reference, 120))
        result = light_of(snapshot, now=now, policy=rules)
        context = f"seed={seed} now={now.isoformat()} policy={rules} snapshot={snapshot}"
        following = result.next_evaluation_at

        if following is None:
            later = light_of(snapshot, now=now + timedelta(days=3650), policy=rules)
            assert later == result, context
            continue

        assert following > now, context
        assert following.astimezone(SHANGHAI) == start_of_day(shanghai_date(following)), context
        just_before = light_of(snapshot, now=following - ONE_MICROSECOND, policy=rules)
        assert just_before == result, context
        midway = now + (following - now) * rng.random()
        assert light_of(snapshot, now=midway, policy=rules) == result, context
        at_change = light_of(snapshot, now=following, policy=rules)
        assert _result(at_change) != _result(result), context
        changed_count += 1
    # Guard against a generator that never exercises the interesting branch.
    assert changed_count > CASES // 3
