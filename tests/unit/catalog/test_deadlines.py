"""Deadline phrases (完成时限): the table in docs/domain.md §2, milestones, what stays unread."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from services.tracker.catalog.deadlines import (
    find_deadline_in_text,
    parse_deadline,
    parse_deadline_with_milestones,
    unreadable_parts,
)
from services.tracker.catalog.model import Milestone

Y = 2022


@pytest.mark.parametrize(
    ("phrase", "due"),
    [
        ("年底前完成", date(Y, 12, 31)),
        ("年底完成", date(Y, 12, 31)),
        ("12月底前完成", date(Y, 12, 31)),
        ("１２月底前完成", date(Y, 12, 31)),  # full-width digits
        ("10月底前完成", date(Y, 10, 31)),
        ("2月底前出台实施方案", date(Y, 2, 28)),
        ("1月底前建成通车", date(Y, 1, 31)),
        ("十月底前完成", date(Y, 10, 31)),
        ("3月15日前完成", date(Y, 3, 15)),
        ("上半年", date(Y, 6, 30)),
        ("一季度", date(Y, 3, 31)),
        ("一季度完成", date(Y, 3, 31)),
        ("三季度末", date(Y, 9, 30)),
        ("6月中旬前完成", date(Y, 6, 20)),
        ("2023年6月30日前完成", date(2023, 6, 30)),
    ],
)
def test_completion_phrases_give_a_shanghai_due_date(phrase: str, due: date) -> None:
    deadline = parse_deadline(phrase, year=Y)
    assert deadline.kind == "complete"
    assert deadline.due == due
    assert deadline.text == phrase
    assert deadline.cadence is None


def test_leap_year_month_end() -> None:
    assert parse_deadline("2月底前完成", year=2024).due == date(2024, 2, 29)


def test_substantial_progress_is_its_own_kind() -> None:
    deadline = parse_deadline("年底前取得明显进展", year=Y)
    assert (deadline.kind, deadline.due) == ("progress", date(Y, 12, 31))


def test_year_long_continuous_task_reports_monthly_and_summarises_at_year_end() -> None:
    deadline = parse_deadline("年内持续推进", year=Y)
    assert deadline.kind == "continuous"
    assert deadline.due is None
    assert deadline.cadence == "monthly"
    assert deadline.summary_due == date(Y, 12, 31)


def test_long_term_task_has_no_end() -> None:
    deadline = parse_deadline("长期坚持", year=Y)
    assert (deadline.kind, deadline.due, deadline.summary_due) == ("continuous", None, None)


def test_monthly_dispatch_is_continuous_monthly() -> None:
    deadline = parse_deadline("逐月调度工作进展", year=Y)
    assert (deadline.kind, deadline.cadence, deadline.due) == ("continuous", "monthly", None)


def test_quarterly_reporting_is_read() -> None:
    assert parse_deadline("按季度调度，年内持续推进", year=Y).cadence == "quarterly"


def test_census_instant_is_an_event() -> None:
    deadline = parse_deadline("普查标准时点是2020年11月1日零时", year=Y)
    assert deadline.kind == "event"
    assert deadline.due == date(2020, 11, 1)
    assert deadline.at == datetime(2020, 11, 1, 0, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_compound_deadline_of_the_design_table_splits_into_milestones() -> None:
    deadline, milestones = parse_deadline_with_milestones(
        "年底前取得明显进展。其中津石高速天津东段1月底前建成通车；"
        "京唐高铁、京滨高铁宝坻至北辰段、塘承高速滨海新区段年底前建成通车",
        year=Y,
    )
    assert (deadline.kind, deadline.due) == ("progress", date(Y, 12, 31))
    assert deadline.text.startswith("年底前取得明显进展。其中")
    assert milestones == [
        Milestone("津石高速天津东段1月底前建成通车", date(Y, 1, 31)),
        Milestone(
            "京唐高铁、京滨高铁宝坻至北辰段、塘承高速滨海新区段年底前建成通车", date(Y, 12, 31)
        ),
    ]


def test_milestone_subject_and_date_separated_by_a_comma_stay_one_milestone() -> None:
    _, milestones = parse_deadline_with_milestones(
        "年底前取得明显进展。其中新打造100个智能工厂和数字化车间，年底前完成", year=Y
    )
    assert milestones == [Milestone("新打造100个智能工厂和数字化车间，年底前完成", date(Y, 12, 31))]


def test_dated_step_of_a_continuous_task_is_a_milestone() -> None:
    deadline, milestones = parse_deadline_with_milestones(
        "4月底前出台相关政策,年内持续推进", year=Y
    )
    assert deadline.kind == "continuous"
    assert deadline.summary_due == date(Y, 12, 31)
    assert milestones == [Milestone("4月底前出台相关政策", date(Y, 4, 30))]


def test_two_continuous_parts_merge_instead_of_making_a_dateless_milestone() -> None:
    deadline, milestones = parse_deadline_with_milestones("逐月调度，年内持续推进", year=Y)
    assert (deadline.kind, deadline.cadence, deadline.summary_due) == (
        "continuous",
        "monthly",
        date(Y, 12, 31),
    )
    assert milestones == []


@pytest.mark.parametrize("phrase", ["主汛期", "6月前完成", "三年内完成", "适时推进", "尽快"])
def test_unreadable_phrase_is_kept_verbatim_without_a_date(phrase: str) -> None:
    deadline, milestones = parse_deadline_with_milestones(phrase, year=Y)
    assert (deadline.kind, deadline.due, deadline.text) == ("unknown", None, phrase)
    assert unreadable_parts(deadline, milestones) == [phrase]


def test_partly_unreadable_deadline_reads_the_rest_and_names_the_unread_part() -> None:
    phrase = (
        "程林庄路、井冈山路积水片区主汛期具备通水条件。"
        "西南路、西沽、咸阳路、密云路4处积水片区年底完工"
    )
    deadline, milestones = parse_deadline_with_milestones(phrase, year=Y)
    assert (deadline.kind, deadline.due) == ("complete", date(Y, 12, 31))
    assert [m.due for m in milestones] == [None, date(Y, 12, 31)]
    assert unreadable_parts(deadline, milestones) == [
        "程林庄路、井冈山路积水片区主汛期具备通水条件"
    ]


def test_year_comes_from_the_caller() -> None:
    assert parse_deadline("年底前完成", year=2030).due == date(2030, 12, 31)


def test_deadline_inside_task_text_is_found_but_running_verbs_are_not_deadlines() -> None:
    found = find_deadline_in_text("建立工作机制，9月底前出台实施方案。", year=Y)
    assert found is not None and found.due == date(Y, 9, 30)
    assert find_deadline_in_text("持续推进入海河流综合治理。", year=Y) is None
