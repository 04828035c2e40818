"""Unit names: normalisation, aliases, group units, splitting lists."""

from __future__ import annotations

import pytest

from services.tracker.catalog.text import split_outside_brackets
from services.tracker.catalog.units import (
    UnitRegistry,
    normalise_unit_name,
    split_units,
    to_simplified,
    unit_kind,
)


def test_traditional_and_simplified_names_are_one_unit() -> None:
    assert normalise_unit_name("市發展改革委") == "市发展改革委"
    assert to_simplified("市財政局牽頭") == "市财政局牵头"


def test_alias_in_brackets_and_alone_map_to_one_canonical_name() -> None:
    assert normalise_unit_name("市外办（市港澳办）") == "市外办"
    assert normalise_unit_name("市外办(市港澳办)") == "市外办"
    assert normalise_unit_name("市港澳办") == "市外办"
    assert normalise_unit_name("市外辦（市港澳辦）") == "市外办"


def test_whitespace_and_trailing_etc_are_dropped() -> None:
    assert normalise_unit_name(" 市 人社局等 ") == "市人社局"


@pytest.mark.parametrize(
    "name",
    [
        "市政府各部门",
        "相关区人民政府",
        "有关部门",
        "各区人民政府",
        "市政府各委、办、局",
        "市有关部门",
    ],
)
def test_group_units_are_recognised(name: str) -> None:
    assert unit_kind(name) == "group"


@pytest.mark.parametrize("name", ["滨海新区人民政府", "市财政局", "人民银行天津分行", "天津港集团"])
def test_agencies_are_not_groups(name: str) -> None:
    assert unit_kind(name) == "agency"


def test_split_keeps_order_brackets_and_group_phrases() -> None:
    assert split_units("市外办（市港澳办）、市政府各委、办、局、市财政局等") == [
        "市外办",
        "市政府各委、办、局",
        "市财政局",
    ]


def test_split_accepts_one_name_per_line_and_drops_repeats() -> None:
    assert split_units(["市教委", "", "市人社局\n市教委", "市國資委"]) == [
        "市教委",
        "市人社局",
        "市国资委",
    ]


def test_registry_learns_aliases_stated_in_the_document() -> None:
    registry = UnitRegistry()
    registry.learn_from_text("由市政府办公厅（市政府研究室）牵头，天津市外辦（市港澳辦）配合")
    assert registry.canonical("市政府研究室") == "市政府办公厅"
    # A built-in alias is not taken away from its unit by a longer spelling.
    assert registry.canonical("市港澳办") == "市外办"
    assert registry.canonical("天津市外办") == "市外办"
    # Learning is per registry: the built-in one is untouched.
    assert normalise_unit_name("市政府研究室") == "市政府研究室"


def test_registry_ignores_brackets_that_are_not_organ_names() -> None:
    registry = UnitRegistry()
    registry.learn_from_text("落实党委(党组)国家安全责任制，建设津静线市域（郊）铁路")
    assert registry.canonical("党组") == "党组"


@pytest.mark.parametrize(
    ("text", "separators", "parts"),
    [
        ("A（B、C）、D", "、", ["A（B、C）", "D"]),
        ("A(B,(C;D)),E；F", "，,；;", ["A(B,(C;D))", "E", "F"]),
        ("A）、B、", "、", ["A）", "B", ""]),  # a stray closing bracket closes nothing
        ("（未闭合、A", "、", ["（未闭合、A"]),
        ("", "、", [""]),
    ],
)
def test_split_outside_brackets(text: str, separators: str, parts: list[str]) -> None:
    assert split_outside_brackets(text, separators) == parts
