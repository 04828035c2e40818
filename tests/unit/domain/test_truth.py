"""Progress figures, target directions, every cadence, holiday moves and the policy file."""

from __future__ import annotations

from datetime import date
from fractions import Fraction
from pathlib import Path

import pytest

from services.tracker.domain.cadence import DueRule, ReportPeriod, due_report, report_periods
from services.tracker.domain.lights import MilestoneSnapshot, ReasonCode, TargetSnapshot
from services.tracker.domain.progress import (
    IndicatorProgress,
    MilestoneProgress,
    ProgressWeights,
    node_percent,
    task_progress,
)
from services.tracker.policy.supervision import (
    DEFAULT_SUPERVISION_POLICY_PATH,
    SupervisionPolicyError,
    SupervisionPolicyReloader,
    load_supervision_policy,
    parse_supervision_policy,
)
from shared.vocabulary import Cadence, DeadlineKind, Light, TargetDirection
from shared.workcal import WorkCalendar, standard_calendar

from ._support import light_of, owed_report, policy, sh, task

AT_LEAST, AT_MOST, ABOUT = TargetDirection.AT_LEAST, TargetDirection.AT_MOST, TargetDirection.ABOUT
EQUAL = ProgressWeights(reported=1, targets=1, milestones=1)


@pytest.mark.parametrize(
    ("direction", "target", "actual", "percent"),
    [
        (AT_LEAST, 5, 5.2, 100),
        (AT_LEAST, 5, 4, 80),
        (AT_LEAST, 40000, 10000, 25),
        (AT_MOST, 5.5, 6.0, 100 - 100 * 0.5 / 5.5),  # 失业率5.5%以内, actual 6.0: a miss
        (AT_MOST, 5.5, 5.0, 100),
        (AT_MOST, 5.5, 11, 0),
        (ABOUT, 3, 3.1, 100),  # within 5 % of 3
        (ABOUT, 3, 2.85, 100),
        (ABOUT, 3, 3.6, 100 - 100 * (0.6 - 0.15) / 3),
    ],
)
def test_each_target_direction(
    direction: TargetDirection, target: float, actual: float, percent: float
) -> None:
    node = IndicatorProgress(
        "指标", target=target, actual=actual, direction=direction, band_percent=5
    )
    assert node_percent(node) == pytest.approx(percent)


def test_a_target_with_no_actual_is_left_out_and_the_reported_percent_stands() -> None:
    progress = task_progress(
        reported_percent=90,
        targets=[IndicatorProgress("地区生产总值增长", target=5, actual=None)],
        milestones=[],
        weights=EQUAL,
    )
    assert progress.percent == 90
    assert progress.figures_zh == "自报 90%"


def test_weights_renormalise_over_the_figures_present() -> None:
    weights = ProgressWeights(reported=2, targets=1, milestones=1)
    progress = task_progress(
        reported_percent=60,
        targets=[IndicatorProgress("新增就业", target=4, actual=2)],  # 50
        milestones=[MilestoneProgress("一期", done=True), MilestoneProgress("二期")],  # 50
        weights=weights,
    )
    assert progress.percent == Fraction(2 * 60 + 50 + 50, 4)
    assert progress.figures_zh == "自报 60%，指标完成 50%，节点完成 1/2，综合 55%"
    no_milestones = task_progress(
        reported_percent=60,
        targets=[IndicatorProgress("新增就业", target=4, actual=2)],
        milestones=[],
        weights=weights,
    )
    assert no_milestones.percent == Fraction(2 * 60 + 50, 3)
    targets_only = ProgressWeights(reported=0, targets=1, milestones=0)
    assert (
        task_progress(reported_percent=60, targets=[], milestones=[], weights=targets_only).percent
        is None
    )
    with pytest.raises(ValueError, match="weight"):
        ProgressWeights(reported=0, targets=0, milestones=0)


def test_a_90_percent_report_on_a_5_percent_target_is_not_behind_schedule() -> None:
    snapshot = task(
        latest_percent=90,
        targets=[TargetSnapshot("地区生产总值增长", 5, None, AT_LEAST)],
    )
    result = light_of(snapshot, now=sh(2022, 12, 2))
    assert ReasonCode.BEHIND_SCHEDULE not in {r.code for r in result.reasons}
    assert result.progress is not None and result.progress.percent == 90


def test_a_milestone_counts_once_done_or_due() -> None:
    later = MilestoneSnapshot("二期", date(2022, 12, 1))
    snapshot = task(latest_percent=70, milestones=[later])
    before = light_of(snapshot, now=sh(2022, 9, 1))
    assert before.progress is not None and before.progress.percent == 70
    after = light_of(snapshot, now=sh(2022, 12, 2))
    assert after.progress is not None and after.progress.percent == 35
    assert after.light is Light.RED  # the missed milestone is its own reason


def test_behind_schedule_reason_names_every_figure() -> None:
    snapshot = task(
        latest_percent=60,
        due_date=date(2022, 12, 31),
        targets=[TargetSnapshot("城镇调查失业率", 5.5, 11, AT_MOST)],
        milestones=[MilestoneSnapshot("一期", date(2022, 12, 1), done=True)],
    )
    result = light_of(snapshot, now=sh(2022, 11, 1))
    (reason,) = [r for r in result.reasons if r.code is ReasonCode.BEHIND_SCHEDULE]
    assert reason.text_zh == (
        "序时进度落后 30 个百分点（自报 60%，指标完成 0%，节点完成 1/1，综合 53.3%，序时 83.3%）"
    )


CALENDAR_YEAR_ENDS = [
    (Cadence.WEEKLY, date(2022, 1, 1), "2021-W52", "2021年第52周", date(2021, 12, 27)),
    (Cadence.WEEKLY, date(2024, 12, 31), "2025-W01", "2025年第1周", date(2024, 12, 30)),
    (Cadence.MONTHLY, date(2022, 12, 31), "2022-12", "2022年12月", date(2022, 12, 1)),
    (Cadence.BI_MONTHLY, date(2022, 12, 31), "2022-B6", "2022年11-12月", date(2022, 11, 1)),
    (Cadence.QUARTERLY, date(2022, 12, 31), "2022-Q4", "2022年第4季度", date(2022, 10, 1)),
    (Cadence.HALF_YEARLY, date(2022, 12, 31), "2022-H2", "2022年下半年", date(2022, 7, 1)),
    (Cadence.YEARLY, date(2022, 12, 31), "2022", "2022年度", date(2022, 1, 1)),
]


@pytest.mark.parametrize(("cadence", "day", "key", "label", "start"), CALENDAR_YEAR_ENDS)
def test_each_cadence_at_a_year_end(
    cadence: Cadence, day: date, key: str, label: str, start: date
) -> None:
    period = ReportPeriod.containing(cadence, day)
    assert (period.key, period.label_zh, period.start) == (key, label, start)
    assert ReportPeriod.parse(key) == period
    following = period.next()
    assert (following.start - period.end).days == 1
    assert following.start.year >= period.end.year


@pytest.mark.parametrize(
    ("cadence", "count"),
    [
        (Cadence.WEEKLY, 53),  # 2021-W52 (holds 2022-01-01) to 2022-W52
        (Cadence.MONTHLY, 12),
        (Cadence.BI_MONTHLY, 6),
        (Cadence.QUARTERLY, 4),
        (Cadence.HALF_YEARLY, 2),
        (Cadence.YEARLY, 1),
    ],
)
def test_reports_owed_in_a_year_by_cadence(cadence: Cadence, count: int) -> None:
    assert len(list(report_periods(cadence, date(2022, 1, 1), date(2022, 12, 31)))) == count


def test_a_half_yearly_task_owes_two_reports_in_2022() -> None:
    snapshot = task(
        deadline_kind=DeadlineKind.CONTINUOUS,
        due_date=None,
        summary_due=date(2022, 12, 31),
        cadence=Cadence.HALF_YEARLY,
    )
    owed = owed_report(snapshot, now=sh(2023, 3, 1))
    assert owed is not None
    assert (owed.period.key, owed.missed_count, owed.due_date) == ("2022-H1", 2, date(2022, 7, 5))
    assert owed.text_zh == "2022年上半年半年报逾期 239 天（累计缺报 2 期）"
    assert light_of(snapshot, now=sh(2022, 7, 5, 23)).light is Light.GREEN


def test_the_weekly_report_is_due_the_monday_after() -> None:
    week = ReportPeriod.parse("2022-W40")  # 10-03..10-09, the Monday after is 10-10
    assert week.report_due_date(DueRule()) == date(2022, 10, 10)
    assert week.report_due_date(DueRule(week_due_days=0)) == date(2022, 10, 9)


def test_a_report_due_on_a_holiday_falls_due_on_the_next_working_day() -> None:
    september = ReportPeriod.parse("2022-09")
    calendar = standard_calendar()
    assert september.report_due_date(DueRule(due_day=5)) == date(2022, 10, 5)
    moved = DueRule(due_day=5, calendar=calendar)
    assert september.report_due_date(moved) == date(2022, 10, 8)  # 国庆; 10-08 is 调休
    assert september.report_missed_from(moved) == sh(2022, 10, 9)
    graced = DueRule(due_day=5, grace_days=2, calendar=calendar)
    assert september.last_accepted_date(graced) == date(2022, 10, 10)  # 10-09 Sun, also 调休
    owed = due_report(
        Cadence.MONTHLY,
        date(2022, 9, 1),
        sh(2022, 10, 8, 12),
        [],
        end=date(2022, 9, 30),
        rule=moved,
    )
    assert owed is not None and not owed.missed
    assert owed.text_zh == "2022年9月月报应于10月8日前报送"


def test_the_document_due_day_wins_over_the_policy() -> None:
    snapshot = task(
        deadline_kind=DeadlineKind.CONTINUOUS,
        due_date=None,
        cadence=Cadence.MONTHLY,
        report_due_day=10,
    )
    owed = owed_report(snapshot, now=sh(2022, 2, 1))
    assert owed is not None and owed.due_date == date(2022, 2, 10)


def test_no_deadline_is_called_截止_on_a_rest_day() -> None:
    rules = policy(calendar=standard_calendar())
    snapshot = task(due_date=date(2022, 12, 31))  # a Saturday
    texts = [r.text_zh for r in light_of(snapshot, now=sh(2022, 12, 30), policy=rules).reasons]
    assert texts == ["距完成时限 1 天（12月31日，休息日）"]
    texts = [r.text_zh for r in light_of(snapshot, now=sh(2022, 12, 31), policy=rules).reasons]
    assert texts == ["今日为完成时限（12月31日，休息日）"]
    friday = task(due_date=date(2022, 12, 30))
    texts = [r.text_zh for r in light_of(friday, now=sh(2022, 12, 30), policy=rules).reasons]
    assert texts == ["今日截止"]


def test_the_shipped_policy_file_builds_the_rules() -> None:
    shipped = load_supervision_policy(DEFAULT_SUPERVISION_POLICY_PATH)
    rules = shipped.light_policy()
    assert (rules.due_soon_days, rules.behind_schedule_points, rules.report_due_day) == (15, 20, 5)
    assert rules.version == shipped.fingerprint[:12]
    assert rules.calendar is not None


def test_policy_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nlights:\n  due_soon_days: -3\n", encoding="utf-8")
    with pytest.raises(SupervisionPolicyError) as caught:
        load_supervision_policy(path)
    assert f"{path}:3:" in str(caught.value) and "due_soon_days" in str(caught.value)
    with pytest.raises(SupervisionPolicyError, match="at least one weight"):
        parse_supervision_policy(
            "version: 1\nprogress:\n  weights: {reported: 0, targets: 0, milestones: 0}\n"
        )
    with pytest.raises(SupervisionPolicyError, match="supervision policy"):
        parse_supervision_policy("version: 1\nreports:\n  cadence: sometimes\n")


def test_the_policy_reloads_on_change_and_keeps_the_old_one_on_a_bad_edit(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\n", encoding="utf-8")
    reloader = SupervisionPolicyReloader(path)
    first = reloader.value.fingerprint
    path.write_text("# a comment only\nversion: 1\n  \n", encoding="utf-8")
    assert reloader.refresh() is False
    path.write_text("version: 1\nlights:\n  behind_schedule_points: 30\n", encoding="utf-8")
    assert reloader.refresh() is True
    assert reloader.value.fingerprint != first
    changed = reloader.value
    path.write_text("version: 1\nlights:\n  behind_schedule_points: 300\n", encoding="utf-8")
    with pytest.raises(SupervisionPolicyError):
        reloader.refresh()
    assert reloader.value is changed


def test_a_year_unknown_to_the_calendar_is_said_so_and_not_guessed() -> None:
    calendar = WorkCalendar()
    assert not calendar.year_known(2099)
    assert calendar.is_working_day(date(2099, 1, 1))  # a Thursday: Mon–Fri, no guess at holidays
    assert not calendar.is_working_day(date(2099, 1, 3))
    assert calendar.report_year(2099) is False
