"""Seeds 003 (district work plan) and 004 (15th five-year plan proposal)."""

from __future__ import annotations

from decimal import Decimal

from services.tracker.catalog import Target

from .seeds import parsed_seed, seed_text


def _targets() -> list[Target]:
    return [target for task in parsed_seed("003").tasks for target in task.targets]


def test_district_plan_paragraphs_become_tasks_without_units() -> None:
    document = parsed_seed("003")
    assert document.kind == "district_plan"
    assert document.title == "天津市和平区2020年重大政策情况"
    assert document.year == 2020
    assert len(document.tasks) == 25
    assert all(not task.lead_units and not task.co_units for task in document.tasks)
    assert document.tasks[1].text.startswith("促进服务业提质增效。")
    assert document.tasks[1].section == "(一)加快引育新动能,全力推动高质量发展"


def test_district_plan_targets() -> None:
    targets = {(t.indicator, t.value, t.unit) for t in _targets()}
    assert ("新增就业", Decimal(40000), "人") in targets
    assert ("新增学位", Decimal(1500), "个") in targets
    assert ("引进京冀项目", Decimal(100), "个") in targets
    assert ("城镇登记失业率", Decimal("3.8"), "%") in targets


def test_district_plan_skips_speech_glossary_and_footer() -> None:
    texts = " ".join(task.text for task in parsed_seed("003").tasks)
    assert "各位代表" not in texts
    assert "六稳:是指" not in texts
    assert "法律声明" not in texts


def test_district_plan_warnings_say_what_is_missing_and_where_markup_was_left() -> None:
    warnings = parsed_seed("003").warnings
    assert [w.line for w in warnings] == [48, None]
    assert "网页标记" in warnings[0].message
    assert "25项任务" in warnings[1].message


def test_five_year_plan_goals_for_2026_to_2030() -> None:
    document = parsed_seed("004")
    assert document.kind == "five_year_plan"
    assert document.tasks == ()
    assert len(document.goals) == 52
    assert [goal.item for goal in document.goals] == [str(n) for n in range(1, 53)]
    assert document.period == (2026, 2030)
    assert all((g.start_year, g.end_year) == (2026, 2030) for g in document.goals)
    assert document.year == 2025  # adopted 二〇二五年十一月十八日


def test_five_year_plan_text_is_simplified_and_the_original_kept() -> None:
    goal = parsed_seed("004").goals[9]
    assert goal.item == "10"
    assert goal.title == "增强科技创新策源能力"
    assert goal.text.startswith("增强科技创新策源能力。积极争取国家战略科技力量在津布局")
    assert goal.text_original.startswith("增強科技創新策源能力。積極爭取國家戰略科技力量在津布局")
    assert goal.section is not None and goal.section.startswith("四、以科技创新引领新质生产力发展")
    assert parsed_seed("004").title.endswith("第十五个五年规划的建议")


def test_five_year_plan_goal_keeps_its_dash_list() -> None:
    goal = parsed_seed("004").goals[5]
    assert goal.title == "主要目标"
    assert goal.text.count("——") == 7


def test_five_year_plan_mojibake_lines_are_reported_not_fixed() -> None:
    document = parsed_seed("004")
    assert [w.line for w in document.warnings] == [5, 10, 29, 38, 73]
    assert all("乱码" in w.message for w in document.warnings)
    assert "?!" in document.goals[0].text_original
    assert "?!" in seed_text("004").split("\n")[4]


def test_five_year_plan_json_has_goals() -> None:
    data = parsed_seed("004").to_json_dict()
    assert data["tasks"] == []
    assert data["goals"][0]["code"].endswith("-G001")
    assert data["goals"][0]["start_year"] == 2026
