"""Numeric targets read from task text."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.tracker.catalog.targets import extract_targets


@pytest.mark.parametrize(
    ("text", "indicator", "value", "unit"),
    [
        ("加强技能培训，新增就业4万人，确保零就业家庭动态清零。", "新增就业", Decimal(40000), "人"),
        ("完成鞍山道54号提升改造，新增学位1500个。", "新增学位", Decimal(1500), "个"),
        ("实行重点项目定制化服务，全年引进京冀项目100个以上。", "引进京冀项目", Decimal(100), "个"),
        ("城镇调查失业率控制在5.5%以内。", "城镇调查失业率", Decimal("5.5"), "%"),
        ("盘活商务楼宇及闲置资产20万平方米。", "盘活商务楼宇及闲置资产", Decimal(200000), "平方米"),
        ("新增承接项目投资额达到1600亿元。", "新增承接项目投资额", Decimal(160_000_000_000), "元"),
    ],
)
def test_target_at_the_end_of_a_clause(
    text: str, indicator: str, value: Decimal, unit: str
) -> None:
    (target,) = extract_targets(text)
    assert (target.indicator, target.value, target.unit) == (indicator, value, unit)


def test_qualifier_is_kept_apart_from_the_indicator() -> None:
    (target,) = extract_targets("全年引进京冀项目100个以上")
    assert target.qualifier == "以上"


def test_value_has_no_exponent() -> None:
    (target,) = extract_targets("新增就业4万人")
    assert str(target.value) == "40000"


@pytest.mark.parametrize(
    "text",
    [
        "孵化培育20家社会组织",  # the number comes before the noun
        "中小微企业返还比例由60%最高提至90%",  # two numbers compete
        "持续推动49个跨学校特色学科群建设",
        "确保零就业家庭动态清零",
    ],
)
def test_no_guessing_when_the_target_is_not_clear(text: str) -> None:
    assert extract_targets(text) == []
