"""Hand-written variants of real documents: every variant docs/domain.md §1 lists."""

from __future__ import annotations

from datetime import date

import pytest

from services.tracker.catalog import ParsedDocument, parse_document

NOTICE = "关于2023年重点工作任务分工的通知\n各区人民政府，市政府各委、办、局：\n"


def _parse(body: str, **kwargs: object) -> ParsedDocument:
    return parse_document(NOTICE + body, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "clause",
    [
        "（市财政局牵头，市发展改革委、市人社局等按职责分工负责，12月底前完成）",
        "(市财政局牵头,市发展改革委、市人社局等按职责分工负责,12月底前完成)",
        "（市财政局牵头,市发展改革委、市人社局等按职责分工负责，12月底前完成)",
    ],
)
def test_full_and_half_width_clauses_read_alike(clause: str) -> None:
    (task,) = _parse(f"1.统筹财政资金。{clause}\n").tasks
    assert task.text == "统筹财政资金。"
    assert task.lead_units == ("市财政局",)
    assert task.co_units == ("市发展改革委", "市人社局")
    assert task.deadline.due == date(2023, 12, 31)


@pytest.mark.parametrize("number", ["1.", "1．", "1。", "１．"])
def test_numbering_styles(number: str) -> None:
    (task,) = _parse(f"{number}做好工作。（市商务局牵头，年底前完成）\n").tasks
    assert task.item == "1"
    assert task.text == "做好工作。"


def test_lead_with_helpers_named_by_pei_he() -> None:
    (task,) = _parse("1.推进改革。（市规划资源局牵头，市农业农村委配合，6月底前完成）\n").tasks
    assert task.lead_units == ("市规划资源局",)
    assert task.co_units == ("市农业农村委",)
    assert task.deadline.due == date(2023, 6, 30)


def test_each_leads_separately() -> None:
    (task,) = _parse("1.加大支持。（市财政局、市税务局分别牵头，年底前完成）\n").tasks
    assert task.lead_units == ("市财政局", "市税务局")
    assert task.co_units == ()


def test_responsible_units_without_a_lead_all_lead() -> None:
    (task,) = _parse("1.稳就业。（市人社局、市教委等按职责分工负责，年内持续推进）\n").tasks
    assert task.lead_units == ("市人社局", "市教委")
    assert task.more_units is True
    assert task.deadline.kind == "continuous"


def test_brackets_in_task_text_that_are_not_clauses_stay() -> None:
    document = _parse(
        "1.对6亩以下(不含6亩)的地块开展试点，建设津静线市域（郊）铁路。"
        "（市规划资源局牵头，年底前完成）\n"
    )
    (task,) = document.tasks
    assert task.text == "对6亩以下(不含6亩)的地块开展试点，建设津静线市域（郊）铁路。"


def test_alias_inside_a_clause_with_nested_brackets() -> None:
    (task,) = _parse(
        "1.做好港澳工作。（市外办（市港澳办）牵头，有关部门按职责分工负责，长期坚持）\n"
    ).tasks
    assert task.lead_units == ("市外办",)
    assert task.co_units == ("有关部门",)
    assert (task.deadline.kind, task.deadline.due) == ("continuous", None)


def test_several_clauses_in_one_item_give_several_tasks_with_their_own_codes() -> None:
    document = _parse(
        "1.第一句任务。（市财政局牵头，年底前完成）第二句任务。（市商务局牵头，3月底前完成）\n"
    )
    first, second = document.tasks
    assert (first.text, second.text) == ("第一句任务。", "第二句任务。")
    assert first.code == f"{document.code}-001-1"
    assert second.code == f"{document.code}-001-2"
    assert second.deadline.due == date(2023, 3, 31)


def test_label_lines_with_leaders_named_per_line() -> None:
    document = _parse(
        "1.加强统计监测，逐月调度。\n"
        "牵头单位：市统计局\n"
        "责任单位：市发展改革委、市商务局\n"
        "完成时限：逐月调度，年内持续推进\n"
        "分管领导：王卫东\n"
        "孙文魁\n"
        "2.下一项。（市财政局牵头，年底前完成）\n"
    )
    labelled, following = document.tasks
    assert labelled.text == "加强统计监测，逐月调度。"
    assert labelled.lead_units == ("市统计局",)
    assert labelled.co_units == ("市发展改革委", "市商务局")
    assert labelled.leaders == ("王卫东", "孙文魁")
    assert (labelled.deadline.kind, labelled.deadline.cadence) == ("continuous", "monthly")
    assert following.item == "2"
    assert document.warnings == ()


def test_responsibility_line_without_lead_line_makes_every_unit_lead() -> None:
    (task,) = _parse("1.建立制度。\n责任单位：市司法局、市财政局\n完成时限：9月底前\n").tasks
    assert task.lead_units == ("市司法局", "市财政局")
    assert task.deadline.due == date(2023, 9, 30)


def test_deadline_inside_task_text_is_used_when_none_is_stated() -> None:
    (task,) = _parse("1.建立XX制度，9月底前出台实施方案。\n牵头单位：市司法局\n").tasks
    assert (task.deadline.kind, task.deadline.due) == ("complete", date(2023, 9, 30))


def test_missing_deadline_is_a_warning_not_a_guess() -> None:
    document = _parse("1.建立制度。（市司法局牵头）\n")
    (task,) = document.tasks
    assert (task.deadline.kind, task.deadline.due) == ("unknown", None)
    assert [w.line for w in document.warnings] == [3]
    assert "未找到完成时限" in document.warnings[0].message


def test_unreadable_clause_deadline_is_verbatim_with_a_warning_on_its_line() -> None:
    document = _parse("\n1.排水改造。（市水务局牵头，主汛期前完成）\n")
    (task,) = document.tasks
    assert (task.deadline.text, task.deadline.kind, task.deadline.due) == (
        "主汛期前完成",
        "unknown",
        None,
    )
    assert [w.line for w in document.warnings] == [4]
    assert "主汛期前完成" in document.warnings[0].message


def test_item_without_clause_and_trailing_text_are_reported() -> None:
    document = _parse(
        "1.有分工。（市财政局牵头，年底前完成）\n2.没有分工的条目。\n3.有尾巴。（市财政局牵头，年底前完成）这句没有分工。\n"
    )
    assert [task.item for task in document.tasks] == ["1", "3"]
    assert [w.line for w in document.warnings] == [4, 5]
    assert "第2项没有责任分工" in document.warnings[0].message
    assert "这句没有分工" in document.warnings[1].message


def test_numbering_that_restarts_per_section_still_gives_unique_codes() -> None:
    document = _parse(
        "（一）第一部分\n1.甲。（市财政局牵头，年底前完成）\n"
        "（二）第二部分\n1.乙。（市商务局牵头，年底前完成）\n"
    )
    codes = [task.code for task in document.tasks]
    assert len(set(codes)) == 2
    assert [task.section for task in document.tasks] == ["（一）第一部分", "（二）第二部分"]


def test_traditional_character_document_is_matched_in_simplified_and_kept_in_original() -> None:
    document = parse_document(
        "天津市人民政府關於2021年重點工作分工的通知\n各區人民政府：\n"
        "1.加快建設。（市發展改革委牽頭，市財政局等按職責分工負責，年底前取得明顯進展）\n"
    )
    (task,) = document.tasks
    assert document.title == "天津市人民政府关于2021年重点工作分工的通知"
    assert document.year == 2021
    assert task.text == "加快建设。"
    assert task.text_original == "加快建設。"
    assert task.lead_units == ("市发展改革委",)
    assert task.co_units == ("市财政局",)
    assert (task.deadline.kind, task.deadline.due) == ("progress", date(2021, 12, 31))


def test_explicit_year_overrides_the_document() -> None:
    (task,) = _parse("1.做好工作。（市商务局牵头，6月底前完成）\n", year=2024).tasks
    assert task.deadline.due == date(2024, 6, 30)


def test_census_event_clause() -> None:
    (task,) = _parse(
        "1.开展第七次全国人口普查。（市统计局牵头，各区人民政府负责，普查标准时点是2020年11月1日零时）\n"
    ).tasks
    assert task.deadline.kind == "event"
    assert (
        task.deadline.at is not None and task.deadline.at.isoformat() == "2020-11-01T00:00:00+08:00"
    )
    assert task.co_units == ("各区人民政府",)


TABLE = (
    "2023年重点工作责任分解表\n"
    "\t序号\n\t重点工作\n\t完成时限\n\t分管领导\n\t责任单位\n"
    "\n\t1\n\t推进改革。\n\t年底前完成\n\t王卫东\n\t市财政局\n市税务局\n"
    "\n\t2\n\t加快建设，\n建成通车。\n\t主汛期前完成\n\t孙文魁、王旭\n\t市交通运输委\n"
    "\n注：每项工作责任单位列第一位的为牵头单位，其他为配合单位。\n"
)


def test_table_without_section_column_and_multi_line_cells() -> None:
    document = parse_document(TABLE)
    first, second = document.tasks
    assert document.kind == "table"
    assert first.section is None
    assert (first.lead_units, first.co_units) == (("市财政局",), ("市税务局",))
    assert second.text == "加快建设，建成通车。"
    assert second.leaders == ("孙文魁", "王旭")
    assert second.deadline.kind == "unknown"
    assert [w.line for w in document.warnings] == [18]


def test_table_with_separate_lead_and_co_columns() -> None:
    document = parse_document(
        "2023年任务清单\n"
        "\t序号\n\t工作任务\n\t牵头单位\n\t配合单位\n\t完成时间\n"
        "\n\t1\n\t推进改革。\n\t市财政局\n\t市税务局、市商务局\n\t一季度\n"
    )
    (task,) = document.tasks
    assert (task.lead_units, task.co_units) == (("市财政局",), ("市税务局", "市商务局"))
    assert task.deadline.due == date(2023, 3, 31)
    assert task.leaders == ()


def test_table_row_missing_cells_is_reported() -> None:
    document = parse_document(
        "2023年重点工作责任分解表\n"
        "\t序号\n\t重点工作\n\t完成时限\n\t分管领导\n\t责任单位\n"
        "\n\t1\n\t推进改革。\n\t年底前完成\n"
    )
    (task,) = document.tasks
    assert task.lead_units == ()
    messages = " ".join(w.message for w in document.warnings)
    assert "只有3列" in messages and "没有牵头单位" in messages and "没有分管领导" in messages


def test_prose_after_the_table_is_not_taken_for_units() -> None:
    document = parse_document(
        TABLE.replace(
            "\n注：每项工作责任单位列第一位的为牵头单位，其他为配合单位。\n",
            "\n抄送：市委办公厅。\n",
        )
    )
    assert document.tasks[-1].co_units == ()
