"""Seed 002: the 2022 responsibility table (138 tasks)."""

from __future__ import annotations

from datetime import date

from services.tracker.catalog import ParsedTask

from .seeds import parsed_seed, tasks_of_item


def _row(item: str) -> ParsedTask:
    (task,) = tasks_of_item(parsed_seed("002"), item)
    return task


def test_document_is_read_as_a_table_of_2022() -> None:
    document = parsed_seed("002")
    assert document.kind == "table"
    assert document.title == "2022年市政府重点工作责任分解表"
    assert document.year == 2022
    assert document.format == "txt"


def test_all_138_tasks_with_leaders_and_a_lead_unit() -> None:
    tasks = parsed_seed("002").tasks
    assert len(tasks) == 138
    assert [task.item for task in tasks] == [str(n) for n in range(1, 139)]
    assert all(task.leaders for task in tasks)
    assert all(len(task.lead_units) == 1 for task in tasks)
    assert len({task.code for task in tasks}) == 138


def test_first_unit_is_the_lead_and_the_others_co_units() -> None:
    row_2 = _row("2")
    assert row_2.text == "一般公共预算收入增长3%左右。"
    assert row_2.lead_units == ("市财政局",)
    assert row_2.co_units == ("市税务局",)
    assert row_2.leaders == ("孙文魁",)
    row_9 = _row("9")
    assert row_9.lead_units == ("市发展改革委",)
    assert row_9.co_units[-1] == "相关区人民政府"
    assert len(row_9.co_units) == 8


def test_several_leaders_one_per_line() -> None:
    assert _row("8").leaders == ("孙文魁", "王卫东")
    assert _row("8").co_units == ("市生态环境局",)


def test_units_separated_by_blank_lines_stay_in_their_row() -> None:
    row_55 = _row("55")
    assert row_55.text == "强化知识产权保护。"
    assert row_55.lead_units == ("市知识产权局",)
    assert row_55.co_units == (
        "市市场监管委",
        "市农业农村委",
        "市司法局",
        "市公安局",
        "市文化和旅游局",
    )
    assert _row("56").text.startswith("构建亲清政商关系")


def test_section_is_carried_down_from_its_first_row() -> None:
    assert _row("1").section == "一、经济社会发展主要预期目标"
    assert _row("8").section == "一、经济社会发展主要预期目标"
    assert _row("12").section == "二、全力拓展协同发展广度深度，进一步增创发展新优势"
    assert _row("138").section == "十、努力提升政府工作效能和水平"


def test_row_10_progress_with_two_milestones() -> None:
    row_10 = _row("10")
    assert row_10.deadline.kind == "progress"
    assert row_10.deadline.due == date(2022, 12, 31)
    assert [(m.text, m.due) for m in row_10.milestones] == [
        ("津石高速天津东段1月底前建成通车", date(2022, 1, 31)),
        ("京唐高铁、京滨高铁宝坻至北辰段、塘承高速滨海新区段年底前建成通车", date(2022, 12, 31)),
    ]
    assert row_10.lead_units == ("市交通运输委",)


def test_row_33_progress_with_its_year_end_milestone() -> None:
    row_33 = _row("33")
    assert (row_33.deadline.kind, row_33.deadline.due) == ("progress", date(2022, 12, 31))
    assert [(m.text, m.due) for m in row_33.milestones] == [
        ("新打造100个智能工厂和数字化车间，年底前完成", date(2022, 12, 31))
    ]


def test_other_compound_deadlines() -> None:
    assert [m.due for m in _row("47").milestones] == [date(2022, 6, 30)]
    assert [m.due for m in _row("52").milestones] == [date(2022, 3, 31)]
    assert [m.due for m in _row("83").milestones] == [date(2022, 12, 31), date(2022, 12, 31)]


def test_plain_deadlines() -> None:
    assert (_row("1").deadline.kind, _row("1").deadline.due) == ("complete", date(2022, 12, 31))
    kinds = {task.deadline.kind for task in parsed_seed("002").tasks}
    assert kinds == {"complete", "progress"}
    tasks_with_milestones = [t.item for t in parsed_seed("002").tasks if t.milestones]
    assert len(tasks_with_milestones) == 13


def test_flood_season_part_is_unread_and_reported_on_its_line() -> None:
    row_87 = _row("87")
    assert row_87.deadline.due == date(2022, 12, 31)
    assert [m.due for m in row_87.milestones] == [None, date(2022, 12, 31)]
    warnings = [w for w in parsed_seed("002").warnings if "主汛期" in w.message]
    assert [w.line for w in warnings] == [830]


def test_the_only_warnings_are_the_flood_season_and_the_reworded_section() -> None:
    warnings = parsed_seed("002").warnings
    assert [w.line for w in warnings] == [398, 830]
    assert "编号相同而文字不同" in warnings[0].message


def test_alias_unit_in_the_table_is_canonical() -> None:
    assert _row("134").lead_units == ("市外办",)
    assert _row("134").co_units == ("市台办",)


def test_targets_are_read_from_table_tasks() -> None:
    (target,) = [t for t in _row("5").targets if t.unit == "人"]
    assert (target.indicator, int(target.value)) == ("城镇新增就业", 350000)


def test_codes_are_document_item_clause() -> None:
    document = parsed_seed("002")
    assert _row("10").code == f"{document.code}-010-1"
    assert document.code.startswith("2022-")
