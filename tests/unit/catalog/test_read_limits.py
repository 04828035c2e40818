"""Hostile and awkward uploads: refused before heavy work, or read with warnings naming the row.

Every hostile file is built here (tests/unit/catalog/hostile.py); each refusal must name
the sheet, member or limit. A per-test timeout turns a hang into a failure, and the
process's peak RSS may not grow by more than a few hundred MB while reading.
"""

from __future__ import annotations

import io
import zipfile

import pytest

from services.tracker.catalog import CatalogError, UnreadableDocument, parse_document
from services.tracker.catalog.errors import DocumentTooLarge
from services.tracker.catalog.limits import DEFAULT_LIMITS, ReadLimits
from services.tracker.catalog.readers import DocumentText, read_document

from . import hostile
from .seeds import xlsx_bytes

pytestmark = pytest.mark.timeout(10)

MEMORY_BOUND_MIB = 500


def refusal(data: bytes, name: str, limits: ReadLimits = DEFAULT_LIMITS) -> CatalogError:
    with hostile.peak_rss_growth() as growth, pytest.raises(CatalogError) as raised:
        read_document(data, name, limits)
    assert growth() < MEMORY_BOUND_MIB
    assert "\n" not in raised.value.message_zh
    return raised.value


def parsed(document: DocumentText):  # type: ignore[no-untyped-def]
    return parse_document(
        document.text, fmt=document.format, origins=document.origins, notes=document.warnings
    )


@pytest.mark.parametrize(
    ("declare", "cell", "named"),
    [
        (True, True, "声明的范围A1:XFD1048576"),
        (True, False, "声明的范围A1:XFD1048576"),
        (False, True, "单元格XFD1048576"),
    ],
    ids=["declared-and-present", "declared-only", "present-only"],
)
def test_a_huge_sheet_extent_is_refused_before_openpyxl_reads_it(
    declare: bool, cell: bool, named: str
) -> None:
    data = hostile.huge_dimension_xlsx(declare=declare, cell=cell)
    assert len(data) < 10_000
    error = refusal(data, "a.xlsx")
    assert isinstance(error, DocumentTooLarge)
    assert "工作表“Sheet”" in error.message_zh and named in error.message_zh
    assert "10000行" in error.message_zh and "100列" in error.message_zh


@pytest.mark.parametrize(("kind", "member"), [("xlsx", hostile.SHEET), ("docx", hostile.BODY)])
def test_a_zip_bomb_is_refused_from_the_zip_directory(kind: str, member: str) -> None:
    error = refusal(hostile.zip_bomb(kind), f"a.{kind}")
    assert isinstance(error, DocumentTooLarge)
    assert member in error.message_zh and "压缩比" in error.message_zh


def test_a_200_mb_text_node_in_a_small_docx_is_refused() -> None:
    data = hostile.text_node_docx()
    assert len(data) < 400_000
    error = refusal(data, "a.docx")
    assert isinstance(error, DocumentTooLarge)
    assert hostile.BODY in error.message_zh and "200.0 MB" in error.message_zh


def test_a_text_node_over_the_limit_is_refused_while_streaming() -> None:
    limits = ReadLimits(max_text_chars=1_000)
    error = refusal(hostile.text_node_docx(size=5_000), "a.docx", limits)
    assert isinstance(error, DocumentTooLarge)
    assert hostile.BODY in error.message_zh and "1000个字符" in error.message_zh


@pytest.mark.parametrize(
    ("limits", "words"),
    [
        (ReadLimits(max_zip_members=3), ["压缩成员", "上限3个"]),
        (ReadLimits(max_member_bytes=2_000), ["解压后为", "单个成员上限"]),
        (ReadLimits(max_total_bytes=10_000), ["解压后共", "上限"]),
        (ReadLimits(max_xml_elements=20), ["XML元素超过20个"]),
        (ReadLimits(max_workbook_cells=5), ["单元格超过上限5个", "工作表“Sheet”"]),
        (ReadLimits(max_sheet_rows=3), ["最多3行"]),
    ],
    ids=["members", "member-size", "total-size", "elements", "cells", "rows"],
)
def test_each_limit_is_enforced_and_named(limits: ReadLimits, words: list[str]) -> None:
    error = refusal(hostile.plain_xlsx(), "a.xlsx", limits)
    assert isinstance(error, DocumentTooLarge)
    for word in words:
        assert word in error.message_zh


def test_too_many_sheets() -> None:
    workbook = hostile.several_sheets_xlsx()
    error = refusal(workbook, "a.xlsx", ReadLimits(max_sheets=1))
    assert isinstance(error, DocumentTooLarge) and "2个工作表" in error.message_zh


def test_a_file_over_the_upload_limit_is_refused_before_reading() -> None:
    error = refusal(b"x" * 2_000, "a.txt", ReadLimits(max_file_bytes=1_000))
    assert isinstance(error, DocumentTooLarge) and "a.txt" in error.message_zh


@pytest.mark.parametrize(
    ("build", "name", "member"),
    [
        (hostile.malformed_docx, "a.docx", hostile.BODY),
        (hostile.malformed_xlsx, "a.xlsx", hostile.SHEET),
    ],
)
def test_malformed_xml_is_unreadable_naming_the_member(build, name: str, member: str) -> None:  # type: ignore[no-untyped-def]
    error = refusal(build(), name)
    assert isinstance(error, UnreadableDocument)
    assert member in error.message_zh and "不是有效的XML" in error.message_zh


def test_an_entity_bomb_is_refused_without_expanding_it() -> None:
    error = refusal(hostile.entity_bomb_docx(), "a.docx")
    assert isinstance(error, UnreadableDocument)
    assert hostile.BODY in error.message_zh and "DTD" in error.message_zh


def test_a_package_python_docx_cannot_make_sense_of_is_unreadable() -> None:
    data = hostile.rewrite(hostile.plain_docx(), {"[Content_Types].xml": b"<Types/>"})
    error = refusal(data, "a.docx")
    assert isinstance(error, UnreadableDocument) and "Word文件" in error.message_zh


def test_a_workbook_openpyxl_cannot_make_sense_of_is_unreadable() -> None:
    data = hostile.rewrite(
        hostile.plain_xlsx(), {"xl/_rels/workbook.xml.rels": b"<Relationships/>"}
    )
    error = refusal(data, "a.xlsx")
    assert isinstance(error, UnreadableDocument) and "Excel文件" in error.message_zh
    assert "损坏" in error.message_zh


def test_a_workbook_without_sheets_is_unreadable() -> None:
    data = hostile.rewrite(hostile.plain_xlsx(), {"xl/workbook.xml": b"<workbook/>"})
    error = refusal(data, "a.xlsx")
    assert isinstance(error, UnreadableDocument) and "没有任何有内容的工作表" in error.message_zh


def test_a_bad_cell_reference_is_unreadable() -> None:
    data = hostile.rewrite(
        hostile.plain_xlsx(), {hostile.SHEET: lambda xml: xml.replace(b'r="A1"', b'r="1A"', 1)}
    )
    error = refusal(data, "a.xlsx")
    assert isinstance(error, UnreadableDocument) and "“1A”" in error.message_zh


def test_an_encrypted_member_is_unreadable() -> None:
    data = bytearray(hostile.plain_docx())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        first = archive.infolist()[0]
    # Set the "encrypted" flag of the first member in its central directory entry.
    central = data.rfind(b"PK\x01\x02", 0, data.rfind(b"PK\x05\x06"))
    while central > 0 and data[central + 46 : central + 46 + len(first.filename)] != (
        first.filename.encode()
    ):
        central = data.rfind(b"PK\x01\x02", 0, central)
    data[central + 8] |= 0x1
    error = refusal(bytes(data), "a.docx")
    assert isinstance(error, UnreadableDocument) and "已加密" in error.message_zh


def test_formulas_read_their_cached_values_and_merged_cells_their_merged_value() -> None:
    document = parsed(read_document(hostile.formulas_and_merges_xlsx(), "a.xlsx"))
    first, second = document.tasks
    assert (first.item, second.item) == ("1", "2")  # A4 is =A3+1, cached as 2
    assert first.section == second.section == "一、稳增长"  # B3:B4
    assert first.lead_units == second.lead_units == ("市财政局",)  # E3:E4
    assert second.deadline.text == "年底前完成"
    assert document.title == "2023年重点工作责任分解表"  # A1:E1, not repeated
    messages = [w.message for w in document.warnings]
    (formula,) = [m for m in messages if "公式" in m]
    assert "工作表“任务”单元格D3" in formula and "DATE(2023,6,30)" in formula
    assert "工作表“任务”第3行：未找到完成时限 / no deadline stated" in messages


def test_a_contacts_sheet_a_total_row_and_an_unnumbered_row_are_skipped() -> None:
    document = parsed(read_document(hostile.several_sheets_xlsx(), "a.xlsx"))
    assert [(t.item, t.text) for t in document.tasks] == [
        ("1", "推进财政改革。"),
        ("2", "扩大消费。"),
    ]
    assert document.tasks[0].co_units == ("市税务局",)
    messages = [w.message for w in document.warnings]
    assert any(m.startswith("工作表“联系人”没有任务表头") for m in messages)
    assert any(m.startswith("工作表“任务”第5行：该行没有序号") for m in messages)
    assert any(m.startswith("工作表“任务”第6行：“合计”行不是任务") for m in messages)
    assert all(w.line is None for w in document.warnings)


def test_a_workbook_without_any_task_header_keeps_its_sheets_for_the_other_layouts() -> None:
    data = xlsx_bytes([["2023年工作要点"], ["1.推进改革。（市财政局牵头）"]])
    document = parsed(read_document(data, "a.xlsx"))
    assert [t.lead_units for t in document.tasks] == [("市财政局",)]


@pytest.mark.parametrize("total", ["合计", "小  计", "总计：2项", "共计"])
def test_total_rows_of_a_text_table_are_skipped(total: str) -> None:
    text = (
        "2023年重点工作责任分解表\n"
        "\t序号\n\t重点工作\n\t完成时限\n\t责任单位\n"
        "\n\t1\n\t推进改革。\n\t年底前完成\n\t市财政局\n"
        f"\n\t{total}\n\t\n\t\n\t1项\n"
    )
    document = parse_document(text)
    assert [t.item for t in document.tasks] == ["1"]
    assert any("不是任务" in w.message and w.line == 12 for w in document.warnings)


def test_a_total_word_inside_a_task_is_not_a_total_row() -> None:
    text = (
        "2023年重点工作责任分解表\n"
        "\t序号\n\t重点工作\n\t完成时限\n\t责任单位\n"
        "\n\t1\n\t合计完成投资100亿元。\n\t年底前完成\n\t市发展改革委\n"
    )
    (task,) = parse_document(text).tasks
    assert task.text == "合计完成投资100亿元。"
