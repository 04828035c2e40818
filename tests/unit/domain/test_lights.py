"""Light rules, one test (or table) per rule, plus boundaries in Asia/Shanghai."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from services.tracker.domain.cadence import Cadence, ReportPeriod, report_periods
from services.tracker.domain.lights import (
    Evaluation,
    LightReason,
    MilestoneSnapshot,
    ReasonCode,
)
from shared.clock import NaiveDatetimeError
from shared.vocabulary import DeadlineKind, Light, TaskStatus

from ._support import light_of, policy, sh, task, utc


def texts(evaluation: Evaluation) -> list[str]:
    return [reason.text_zh for reason in evaluation.reasons]


def codes(evaluation: Evaluation) -> list[ReasonCode]:
    return [reason.code for reason in evaluation.reasons]


def test_light_labels() -> None:
    assert [light.label_zh for light in Light] == ["绿灯", "黄灯", "红灯", "蓝灯", "灰灯"]
    assert Light.RED.value == "red"


# --- grey and blue -----------------------------------------------------------------------


def test_closed_task_is_grey_forever() -> None:
    result = light_of(task(status=TaskStatus.CLOSED), now=sh(2023, 6, 1))
    assert result == Evaluation(Light.GREY, (LightReason(ReasonCode.CLOSED, "已销号"),), 0, None)


def test_completion_requested_is_blue_even_past_due() -> None:
    snapshot = task(
        status=TaskStatus.COMPLETION_REQUESTED,
        latest_percent=10,
        latest_report_has_blockers=True,
        cadence=Cadence.MONTHLY,
    )
    for now in (sh(2022, 6, 1), sh(2023, 6, 1)):
        result = light_of(snapshot, now=now)
        assert result.light is Light.BLUE
        assert texts(result) == ["已申请销号，待督查室核验"]
        assert (result.days_overdue, result.next_evaluation_at) == (0, None)


# --- red ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status", [TaskStatus.NOT_STARTED, TaskStatus.IN_PROGRESS, TaskStatus.RETURNED]
)
def test_past_due_and_not_closed_is_red(status: TaskStatus) -> None:
    result = light_of(task(status=status), now=sh(2023, 1, 3, 10))
    assert result.light is Light.RED
    assert texts(result) == ["已逾期 3 天"]
    assert result.days_overdue == 3
    assert result.red_since == sh(2023, 1, 1)
    assert result.summary == "red: 已逾期 3 天"


def test_overdue_from_shanghai_midnight_not_utc_midnight() -> None:
    snapshot = task()
    before = light_of(snapshot, now=utc(2022, 12, 31, 15, 59, 59))
    after = light_of(snapshot, now=utc(2022, 12, 31, 16, 0, 0))
    assert before.light is Light.YELLOW
    assert texts(before) == ["今日截止"]
    assert before.next_evaluation_at == utc(2022, 12, 31, 16)
    assert after.light is Light.RED
    assert texts(after) == ["已逾期 1 天"]
    assert after.days_overdue == 1


@pytest.mark.parametrize(
    ("due", "last_on_time", "first_late"),
    [
        (date(2023, 1, 31), sh(2023, 1, 31, 23, 59, 59), sh(2023, 2, 1)),
        (date(2023, 2, 28), sh(2023, 2, 28, 23, 59, 59), sh(2023, 3, 1)),
        (date(2024, 2, 28), sh(2024, 2, 28, 23, 59, 59), sh(2024, 2, 29)),
        (date(2024, 2, 29), sh(2024, 2, 29, 23, 59, 59), sh(2024, 3, 1)),
        (date(2022, 12, 31), sh(2022, 12, 31, 23, 59, 59), sh(2023, 1, 1)),
    ],
)
def test_due_dates_at_month_and_year_ends(
    due: date, last_on_time: datetime, first_late: datetime
) -> None:
    snapshot = task(start_date=date(due.year, 1, 1), due_date=due)
    assert light_of(snapshot, now=last_on_time).light is Light.YELLOW
    assert light_of(snapshot, now=last_on_time).next_evaluation_at == first_late
    late = light_of(snapshot, now=first_late)
    assert late.light is Light.RED and late.days_overdue == 1


def test_leap_day_counts_in_days_overdue() -> None:
    snapshot = task(start_date=date(2024, 1, 1), due_date=date(2024, 2, 27))
    assert light_of(snapshot, now=sh(2024, 3, 1)).days_overdue == 3
    snapshot = task(start_date=date(2023, 1, 1), due_date=date(2023, 2, 27))
    assert light_of(snapshot, now=sh(2023, 3, 1)).days_overdue == 2


def test_missing_report_past_its_due_date_is_red() -> None:
    snapshot = task(
        deadline_kind=DeadlineKind.CONTINUOUS,
        received_periods=[ReportPeriod.parse("2022-01"), ReportPeriod.parse("2022-02")],
    )
    result = light_of(snapshot, now=sh(2022, 4, 17, 8))
    assert result.light is Light.RED
    assert texts(result) == ["2022年3月月报逾期 12 天"]
    assert codes(result) == [ReasonCode.REPORT_MISSING]
    assert result.days_overdue == 12
    assert result.red_since == sh(2022, 4, 6)
    assert result.summary == "red: 2022年3月月报逾期 12 天"


def test_report_filed_the_minute_before_the_deadline_keeps_the_task_out_of_red() -> None:
    march = ReportPeriod.parse("2022-03")
    earlier = set(report_periods(Cadence.MONTHLY, date(2022, 1, 1), date(2022, 2, 28)))
    without = task(deadline_kind=DeadlineKind.CONTINUOUS, received_periods=earlier)
    # Filed at 2022-04-05 23:59 +08:00: the tracker records its period as received.
    filed = task(
        deadline_kind=DeadlineKind.CONTINUOUS,
        received_periods=earlier | {march},
        latest_report_at=sh(2022, 4, 5, 23, 59),
    )
    assert light_of(without, now=sh(2022, 4, 5, 23, 59)).light is Light.GREEN
    assert light_of(without, now=sh(2022, 4, 6)).light is Light.RED
    assert light_of(filed, now=sh(2022, 4, 6)).light is Light.GREEN
    assert light_of(filed, now=sh(2022, 4, 6)).next_evaluation_at == sh(2022, 5, 6)


def test_a_returned_latest_report_does_not_count_as_received() -> None:
    # The March report was filed on 4月5日 and returned: the tracker takes its period out of
    # the received ones, so the task is returned and owes March again.
    earlier = set(report_periods(Cadence.MONTHLY, date(2022, 1, 1), date(2022, 2, 28)))
    snapshot = task(
        status=TaskStatus.RETURNED,
        deadline_kind=DeadlineKind.CONTINUOUS,
        received_periods=earlier,
        latest_report_at=sh(2022, 4, 5, 10),
    )
    result = light_of(snapshot, now=sh(2022, 4, 8))
    assert result.light is Light.RED
    assert texts(result) == ["2022年3月月报逾期 3 天"]


def test_quarterly_cadence_from_the_document() -> None:
    snapshot = task(deadline_kind=DeadlineKind.CONTINUOUS, cadence=Cadence.QUARTERLY)
    assert light_of(snapshot, now=sh(2022, 4, 5, 23, 59)).light is Light.GREEN
    assert light_of(snapshot, now=sh(2022, 4, 5, 23, 59)).next_evaluation_at == sh(2022, 4, 6)
    result = light_of(snapshot, now=sh(2022, 4, 6))
    assert (result.light, texts(result)) == (Light.RED, ["2022年第1季度季报逾期 1 天"])


def test_cadence_applies_to_dated_tasks_only_when_stated() -> None:
    dated = task(deadline_kind=DeadlineKind.COMPLETE)
    assert light_of(dated, now=sh(2022, 5, 1)).light is Light.GREEN
    dispatched = task(deadline_kind=DeadlineKind.COMPLETE, cadence=Cadence.MONTHLY)
    assert light_of(dispatched, now=sh(2022, 5, 1)).light is Light.RED


def test_endless_continuous_task_reports_monthly_forever() -> None:
    snapshot = task(
        deadline_kind=DeadlineKind.CONTINUOUS,
        due_date=None,
        start_date=None,
        created_at=sh(2026, 1, 10),
    )
    assert light_of(snapshot, now=sh(2026, 2, 5, 23)).light is Light.GREEN
    result = light_of(snapshot, now=sh(2031, 2, 6))
    assert result.light is Light.RED
    assert result.reasons[0].text_zh.startswith("2026年1月月报逾期 ")


def test_default_continuous_cadence_can_be_switched_off() -> None:
    snapshot = task(deadline_kind=DeadlineKind.CONTINUOUS)
    rules = policy(default_continuous_cadence=None)
    result = light_of(snapshot, now=sh(2022, 5, 1), policy=rules)
    assert result.light is Light.GREEN
    assert result.next_evaluation_at == sh(2022, 12, 16)


def test_overdue_milestone_is_red() -> None:
    snapshot = task(
        deadline_kind=DeadlineKind.PROGRESS,
        milestones=[
            MilestoneSnapshot("海河隧道", date(2022, 1, 31)),
            MilestoneSnapshot("地铁4号线", date(2022, 12, 31)),
        ],
    )
    result = light_of(snapshot, now=sh(2022, 2, 10))
    assert result.light is Light.RED
    assert texts(result) == ["节点「海河隧道」已逾期 10 天"]
    done = task(milestones=[MilestoneSnapshot("海河隧道", date(2022, 1, 31), done=True)])
    assert light_of(done, now=sh(2022, 2, 10)).light is Light.GREEN
    unlit = policy(light_milestones=False)
    assert light_of(snapshot, now=sh(2022, 2, 10), policy=unlit).light is Light.GREEN


def test_red_counts_the_longest_overdue_and_lists_every_red_reason() -> None:
    snapshot = task(
        deadline_kind=DeadlineKind.CONTINUOUS,
        due_date=date(2022, 6, 30),
        received_periods=set(report_periods(Cadence.MONTHLY, date(2022, 1, 1), date(2022, 4, 30))),
        milestones=[MilestoneSnapshot("一期", date(2022, 3, 31))],
    )
    result = light_of(snapshot, now=sh(2022, 7, 10))
    assert texts(result) == [
        "已逾期 10 天",
        "节点「一期」已逾期 101 天",
        "2022年5月月报逾期 35 天（累计缺报 2 期）",
    ]
    assert result.days_overdue == 101
    assert result.red_since == sh(2022, 4, 1)


def test_red_suppresses_yellow_reasons() -> None:
    snapshot = task(
        latest_percent=0,
        latest_report_has_blockers=True,
        milestones=[MilestoneSnapshot("二期", date(2023, 1, 5))],
    )
    result = light_of(snapshot, now=sh(2023, 1, 2))
    assert result.light is Light.RED
    assert codes(result) == [ReasonCode.TASK_OVERDUE]


# --- extensions --------------------------------------------------------------------------


def test_granted_extension_moves_the_due_date() -> None:
    snapshot = task(extended_due=date(2023, 3, 31))
    result = light_of(snapshot, now=sh(2023, 2, 1))
    assert result.light is Light.GREEN
    assert result.next_evaluation_at == sh(2023, 3, 16)
    assert snapshot.due_date == date(2022, 12, 31)
    late = light_of(snapshot, now=sh(2023, 4, 2))
    assert (late.light, texts(late), late.red_since) == (Light.RED, ["已逾期 2 天"], sh(2023, 4, 1))


def test_extension_also_extends_the_reporting_span() -> None:
    received = set(report_periods(Cadence.MONTHLY, date(2022, 1, 1), date(2022, 12, 31)))
    snapshot = task(
        deadline_kind=DeadlineKind.CONTINUOUS,
        received_periods=received,
        extended_due=date(2023, 2, 28),
    )
    assert light_of(snapshot, now=sh(2023, 2, 6)).light is Light.RED
    assert texts(light_of(snapshot, now=sh(2023, 2, 6))) == ["2023年1月月报逾期 1 天"]


def test_extension_without_due_date_is_rejected() -> None:
    with pytest.raises(ValueError, match="extended_due"):
        task(due_date=None, extended_due=date(2023, 1, 1))


# --- yellow ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "light", "reason"),
    [
        (sh(2022, 12, 15, 23, 59, 59), Light.GREEN, None),
        (sh(2022, 12, 16), Light.YELLOW, "距截止 15 天"),
        (sh(2022, 12, 21, 12), Light.YELLOW, "距截止 10 天"),
        (sh(2022, 12, 30, 23, 59), Light.YELLOW, "距截止 1 天"),
        (sh(2022, 12, 31), Light.YELLOW, "今日截止"),
        (utc(2022, 12, 31, 15, 59), Light.YELLOW, "今日截止"),
    ],
)
def test_due_within_fifteen_days_is_yellow(now: datetime, light: Light, reason: str | None) -> None:
    result = light_of(task(), now=now)
    assert result.light is light
    assert texts(result) == ([reason] if reason else [])


def test_due_soon_window_is_configurable() -> None:
    rules = policy(due_soon_days=30)
    assert light_of(task(), now=sh(2022, 12, 1), policy=rules).light is Light.YELLOW
    assert light_of(task(), now=sh(2022, 11, 30), policy=rules).light is Light.GREEN
    assert light_of(task(), now=sh(2022, 11, 30), policy=rules).next_evaluation_at == sh(
        2022, 12, 1
    )


def test_milestone_due_soon_is_yellow() -> None:
    snapshot = task(milestones=[MilestoneSnapshot("海河隧道", date(2022, 1, 31))])
    result = light_of(snapshot, now=sh(2022, 1, 21))
    assert (result.light, texts(result)) == (Light.YELLOW, ["节点「海河隧道」距截止 10 天"])
    assert codes(result) == [ReasonCode.MILESTONE_DUE_SOON]
    assert texts(light_of(snapshot, now=sh(2022, 1, 31, 23))) == ["节点「海河隧道」今日截止"]


# 2022 has 365 days from Jan 1. On day D (0-based elapsed days) the schedule is 100*D/365.
@pytest.mark.parametrize(
    ("percent", "now", "light", "reason"),
    [
        # 73 days elapsed on Mar 15 -> 20% exactly; 0 reported -> gap 20, not more than 20.
        (0, sh(2022, 3, 15), Light.GREEN, None),
        (0, sh(2022, 3, 16), Light.YELLOW, "序时进度落后 20.3 个百分点（自报 0%，序时 20.3%）"),
        # 182.5 days would be 50%; Jul 3 (183 elapsed) is 50.1% -> gap 20.1 over 30 reported.
        (30, sh(2022, 7, 2, 23, 59), Light.GREEN, None),
        (30, sh(2022, 7, 3), Light.YELLOW, "序时进度落后 20.1 个百分点（自报 30%，序时 50.1%）"),
        # 146 days elapsed on May 27 -> exactly 40%; 15 reported -> gap 25 exactly.
        (15, sh(2022, 5, 27, 9), Light.YELLOW, "序时进度落后 25 个百分点（自报 15%，序时 40%）"),
        (33.3, sh(2022, 7, 3), Light.GREEN, None),
        (100, sh(2022, 12, 15), Light.GREEN, None),
    ],
)
def test_behind_pro_rata_schedule_by_more_than_twenty_points_is_yellow(
    percent: float, now: datetime, light: Light, reason: str | None
) -> None:
    result = light_of(task(latest_percent=percent), now=now)
    assert result.light is light
    assert texts(result) == ([reason] if reason else [])


def test_pro_rata_in_a_leap_year_uses_366_days() -> None:
    # 2024: 73.2 days is 20%; on Mar 14 (73 elapsed) 19.9%, Mar 15 (74 elapsed) 20.2%.
    snapshot = task(start_date=date(2024, 1, 1), due_date=date(2024, 12, 31), latest_percent=0)
    assert light_of(snapshot, now=sh(2024, 3, 14, 23, 59)).light is Light.GREEN
    assert light_of(snapshot, now=sh(2024, 3, 14, 23, 59)).next_evaluation_at == sh(2024, 3, 15)
    assert texts(light_of(snapshot, now=sh(2024, 3, 15))) == [
        "序时进度落后 20.2 个百分点（自报 0%，序时 20.2%）"
    ]


def test_no_report_counts_as_zero_percent_unless_configured() -> None:
    snapshot = task(latest_percent=None)
    assert light_of(snapshot, now=sh(2022, 6, 1)).light is Light.YELLOW
    rules = policy(missing_percent_counts_as_zero=False)
    assert light_of(snapshot, now=sh(2022, 6, 1), policy=rules).light is Light.GREEN


def test_pro_rata_is_not_applied_to_continuous_or_undated_tasks() -> None:
    received = set(report_periods(Cadence.MONTHLY, date(2022, 1, 1), date(2022, 12, 31)))
    continuous = task(
        deadline_kind=DeadlineKind.CONTINUOUS, latest_percent=0, received_periods=received
    )
    assert light_of(continuous, now=sh(2022, 9, 1)).light is Light.GREEN
    unknown = task(deadline_kind=DeadlineKind.UNKNOWN, due_date=None, latest_percent=0)
    assert light_of(unknown, now=sh(2022, 9, 1)) == Evaluation(Light.GREEN, (), 0, None)


def test_threshold_is_configurable() -> None:
    rules = policy(behind_schedule_points=10)
    snapshot = task(latest_percent=30)
    assert light_of(snapshot, now=sh(2022, 6, 1), policy=rules).light is Light.YELLOW
    assert light_of(snapshot, now=sh(2022, 6, 1)).light is Light.GREEN


def test_blockers_in_the_latest_report_are_yellow() -> None:
    result = light_of(task(latest_report_has_blockers=True), now=sh(2022, 6, 1))
    assert result.light is Light.YELLOW
    assert texts(result) == ["报告反映梗阻障碍"]
    assert result.next_evaluation_at == sh(2022, 12, 16)
    rules = policy(blockers_are_yellow=False)
    assert (
        light_of(task(latest_report_has_blockers=True), now=sh(2022, 6, 1), policy=rules).light
        is Light.GREEN
    )


def test_every_yellow_reason_is_listed() -> None:
    snapshot = task(
        latest_percent=0,
        latest_report_has_blockers=True,
        milestones=[MilestoneSnapshot("二期", date(2022, 12, 20))],
    )
    result = light_of(snapshot, now=sh(2022, 12, 20))
    assert result.light is Light.YELLOW
    assert result.days_overdue == 0 and result.red_since is None
    assert codes(result) == [
        ReasonCode.DUE_SOON,
        ReasonCode.MILESTONE_DUE_SOON,
        ReasonCode.BEHIND_SCHEDULE,
        ReasonCode.BLOCKERS_REPORTED,
    ]
    assert result.summary.startswith("yellow: 距截止 11 天；节点「二期」今日截止；序时进度落后 ")


def test_green_has_no_reasons() -> None:
    result = light_of(task(latest_percent=60), now=sh(2022, 6, 1))
    # 60% reported falls more than 20 behind once over 80% of 365 days elapsed: Oct 21.
    assert result == Evaluation(Light.GREEN, (), 0, sh(2022, 10, 21))
    assert result.summary == "green"


def test_not_started_before_its_start_is_green() -> None:
    snapshot = task(status=TaskStatus.NOT_STARTED, start_date=date(2022, 7, 1), latest_percent=None)
    result = light_of(snapshot, now=sh(2022, 3, 1))
    assert result.light is Light.GREEN
    # 184 days from Jul 1; gap > 20 first when more than 36.8 days elapsed: Aug 7.
    assert result.next_evaluation_at == sh(2022, 8, 7)


# --- next_evaluation_at for each kind of change ------------------------------------------


@pytest.mark.parametrize(
    ("snapshot_overrides", "now", "expected"),
    [
        ({}, sh(2022, 6, 1), sh(2022, 12, 16)),  # enters the 15-day window
        ({}, sh(2022, 12, 20, 13), sh(2022, 12, 21)),  # day counter in the window
        ({}, sh(2022, 12, 31, 23), sh(2023, 1, 1)),  # becomes overdue
        ({}, sh(2023, 1, 5, 13), sh(2023, 1, 6)),  # red: day counter
        ({"latest_percent": 0}, sh(2022, 2, 1), sh(2022, 3, 16)),  # gap crosses 20
        ({"deadline_kind": DeadlineKind.CONTINUOUS}, sh(2022, 1, 9), sh(2022, 2, 6)),  # report
        (
            {"milestones": [MilestoneSnapshot("一期", date(2022, 3, 31))]},
            sh(2022, 2, 1),
            sh(2022, 3, 16),
        ),
    ],
)
def test_next_evaluation_at(
    snapshot_overrides: dict[str, object], now: datetime, expected: datetime
) -> None:
    assert light_of(task(**snapshot_overrides), now=now).next_evaluation_at == expected


# --- validation --------------------------------------------------------------------------


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(NaiveDatetimeError):
        light_of(task(), now=datetime(2022, 6, 1))  # noqa: DTZ001
    with pytest.raises(NaiveDatetimeError):
        task(created_at=datetime(2022, 1, 1))  # noqa: DTZ001
    with pytest.raises(NaiveDatetimeError):
        task(latest_report_at=datetime(2022, 1, 1))  # noqa: DTZ001


@pytest.mark.parametrize("percent", [-1, 100.5, float("nan")])
def test_percent_outside_zero_to_hundred_is_rejected(percent: float) -> None:
    with pytest.raises(ValueError, match="latest_percent"):
        task(latest_percent=percent)


@pytest.mark.parametrize(
    "overrides",
    [
        {"due_soon_days": -1},
        {"behind_schedule_points": 100},
        {"report_due_day": 0},
        {"report_due_day": 32},
    ],
)
def test_bad_policies_are_rejected(overrides: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        policy(**overrides)


def test_snapshots_are_values() -> None:
    a = task(received_periods=[ReportPeriod.parse("2022-01")], milestones=[])
    b = task(received_periods={ReportPeriod.parse("2022-01")}, milestones=())
    assert a == b and hash(a) == hash(b)
    assert isinstance(a.received_periods, frozenset)
    assert task(start_date=None, created_at=utc(2022, 3, 31, 16)).effective_start == date(
        2022, 4, 1
    )
