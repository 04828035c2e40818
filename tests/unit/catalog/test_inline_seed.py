"""Seed 000: the 2022 inline task division — one task per responsibility clause."""

from __future__ import annotations

import re
from datetime import date

from services.tracker.catalog import ParsedTask

from .seeds import parsed_seed, seed_text, tasks_of_item


def _clause(item: str, clause: int) -> ParsedTask:
    return tasks_of_item(parsed_seed("000"), item)[clause - 1]


def test_document_title_and_year_come_from_the_notice() -> None:
    document = parsed_seed("000")
    assert document.kind == "inline"
    assert (
        document.title == "天津市人民政府印发关于落实国务院《政府工作报告》重点工作任务分工的通知"
    )
    assert document.year == 2022  # from the date line 2022年5月6日


def test_one_task_per_responsibility_clause() -> None:
    # Counted independently: every bracket naming who leads or answers for the work.
    clauses = re.findall(r"\([^()]*(?:牵头|负责)[^()]*\)", seed_text("000"))
    assert len(clauses) == 170
    assert len(parsed_seed("000").tasks) == 170
    assert {task.item for task in parsed_seed("000").tasks} == {str(n) for n in range(1, 53)}
    assert parsed_seed("000").warnings == ()


def test_item_7_lead_and_co_units_and_deadline() -> None:
    (task,) = tasks_of_item(parsed_seed("000"), "7")
    assert task.section == "(三)提升积极的财政政策效能"
    assert task.text.startswith("积极统筹中央转移支付和市级财政资金")
    assert task.text.endswith("密切跟踪政策执行情况。")
    assert task.lead_units == ("市财政局",)
    assert task.co_units == ("市发展改革委", "市人社局", "人民银行天津分行", "市税务局", "市烟草局")
    assert task.more_units is True
    assert (task.deadline.kind, task.deadline.due) == ("complete", date(2022, 12, 31))


def test_item_10_holds_several_clauses() -> None:
    tasks = tasks_of_item(parsed_seed("000"), "10")
    assert len(tasks) == 4
    assert [t.code.rsplit("-", 1)[1] for t in tasks] == ["1", "2", "3", "4"]
    assert tasks[0].text == "引导金融机构提升金融服务实体经济质效,稳步推进信贷总量增长和结构优化。"
    assert tasks[1].text == "按照人民银行统一部署,做好保持人民币汇率基本稳定工作。"
    assert tasks[0].lead_units == ("人民银行天津分行",)
    # 按职责分工负责 without 牵头: every named unit leads its own part.
    assert tasks[2].lead_units == ("人民银行天津分行", "天津银保监局")
    assert tasks[2].co_units == ()
    # A bracket that is not a clause stays in the text.
    assert "(LPR)" in tasks[3].text


def test_continuous_deadline_with_a_policy_milestone() -> None:
    task = _clause("39", 1)
    assert task.lead_units == ("市财政局", "市卫生健康委", "市医保局")
    assert task.deadline.kind == "continuous"
    assert task.deadline.cadence == "monthly"
    assert task.deadline.summary_due == date(2022, 12, 31)
    assert [(m.text, m.due) for m in task.milestones] == [
        ("9月底前出台相关政策", date(2022, 9, 30))
    ]


def test_group_units_and_lead_with_group_co_unit() -> None:
    assert _clause("3", 1).lead_units == ("市政府各部门",)
    task = _clause("16", 3)
    assert task.lead_units == ("市发展改革委", "市工业和信息化局", "市财政局", "市市场监管委")
    assert task.co_units == ("有关部门",)
    assert task.deadline.due == date(2022, 12, 31)


def test_hong_kong_macao_office_is_the_foreign_affairs_office() -> None:
    assert _clause("50", 1).lead_units == ("市外办",)


def test_web_text_around_the_document_is_not_read() -> None:
    texts = " ".join(task.text for task in parsed_seed("000").tasks)
    assert "环保网" not in texts
    assert "PPP项目" not in texts
    assert "现将" not in texts


def test_no_task_text_contains_a_clause() -> None:
    for task in parsed_seed("000").tasks:
        assert "牵头," not in task.text and "按职责分工负责" not in task.text, task.code


def test_non_clause_brackets_stay_in_task_text() -> None:
    texts = [task.text for task in tasks_of_item(parsed_seed("000"), "14")]
    assert any("(不含水资源税)" in text for text in texts)


def test_deadline_kinds_of_the_whole_document() -> None:
    tasks = parsed_seed("000").tasks
    complete = [t for t in tasks if t.deadline.kind == "complete"]
    assert len(complete) == 5
    assert all(t.deadline.due == date(2022, 12, 31) for t in complete)
    assert {t.deadline.kind for t in tasks} == {"complete", "continuous"}
