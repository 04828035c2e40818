"""Format detection, document identity, the dry-run JSON shape and refusals."""

from __future__ import annotations

import json

import pytest

from services.tracker.catalog import NotATaskDocument, YearNotFound, parse_document
from services.tracker.catalog.codes import document_code

from .seeds import parsed_seed, seed_text

NEWS = (
    "天津市财政局拨付资金1.85亿助力垃圾处理工作顺利开展\n"
    "发布日期：2021-10-19\n"
    "近日，市财政局拨付资金1.85亿元，支持各区开展生活垃圾分类处理工作。\n"
    "下一步，市财政局将继续加强资金监管，提高资金使用效益。\n"
)


@pytest.mark.parametrize(
    ("prefix", "kind"),
    [("000", "inline"), ("002", "table"), ("003", "district_plan"), ("004", "five_year_plan")],
)
def test_each_seed_is_recognised(prefix: str, kind: str) -> None:
    assert parsed_seed(prefix).kind == kind


def test_a_news_page_is_not_a_task_document() -> None:
    with pytest.raises(NotATaskDocument) as raised:
        parse_document(NEWS)
    message = str(raised.value)
    assert "不是任务分工文件" in message and "not a task document" in message


def test_the_web_text_of_seed_000_alone_is_not_a_task_document() -> None:
    lines = seed_text("000").split("\n")
    with pytest.raises(NotATaskDocument):
        parse_document("\n".join(lines[:6] + lines[116:]))


def test_empty_text_is_not_a_task_document() -> None:
    with pytest.raises(NotATaskDocument):
        parse_document("\n\n")


def test_a_document_without_a_year_needs_one() -> None:
    text = "重点工作任务分工\n1.做好工作。（市商务局牵头，年底前完成）\n"
    with pytest.raises(YearNotFound) as raised:
        parse_document(text)
    assert "--year" in raised.value.message_zh
    assert parse_document(text, year=2025).year == 2025


def test_dry_run_json_shape() -> None:
    data = parsed_seed("002").to_json_dict()
    assert set(data) == {"document", "tasks", "warnings"}
    assert data["document"] == {
        "title": "2022年市政府重点工作责任分解表",
        "year": 2022,
        "format": "txt",
    }
    task = data["tasks"][9]
    assert set(task) == {
        "code", "section", "item", "text", "lead_units", "co_units", "leaders",
        "deadline", "milestones", "targets",
    }  # fmt: skip
    assert task["deadline"] == {
        "text": task["deadline"]["text"],
        "kind": "progress",
        "due": "2022-12-31",
        "cadence": None,
    }
    assert task["milestones"][0] == {"text": "津石高速天津东段1月底前建成通车", "due": "2022-01-31"}
    assert data["warnings"][1]["line"] == 830
    json.dumps(data, ensure_ascii=False)  # serialisable as is


def test_continuous_deadline_json_has_a_cadence() -> None:
    task = parsed_seed("000").to_json_dict()["tasks"][0]
    assert task["deadline"] == {
        "text": "年内持续推进",
        "kind": "continuous",
        "due": None,
        "cadence": "monthly",
    }


def test_targets_json_values_are_numbers() -> None:
    task = parsed_seed("002").to_json_dict()["tasks"][4]
    assert {
        "indicator": "城镇新增就业",
        "value": 350000,
        "unit": "人",
        "direction": "at_least",
    } in task["targets"]
    assert {
        "indicator": "城镇调查失业率",
        "value": 5.5,
        "unit": "%",
        "direction": "at_most",
    } in task["targets"]


def test_document_code_depends_on_title_and_year_not_on_spelling() -> None:
    assert document_code("2022年市政府重点工作责任分解表", 2022) == parsed_seed("002").code
    assert document_code(" 2022年市政府重点工作责任分解表 ", 2022) == parsed_seed("002").code
    assert document_code("2022年市政府重點工作責任分解表", 2022) == parsed_seed("002").code
    assert document_code("2022年市政府重点工作责任分解表", 2023) != parsed_seed("002").code
    assert document_code("2023年市政府重点工作责任分解表", 2022) != parsed_seed("002").code


def test_parsing_twice_gives_identical_results() -> None:
    assert parse_document(seed_text("000")) == parse_document(seed_text("000"))
