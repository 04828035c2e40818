"""Reading uploaded bytes: text encodings, .docx and .xlsx, and what is refused."""

from __future__ import annotations

import io
from datetime import date

import pytest
from docx import Document

from services.tracker.catalog import (
    UnreadableDocument,
    UnsupportedFormat,
    parse_document,
    read_document_text,
)

from .seeds import docx_bytes, parsed_seed, seed_text, table_rows_of_seed_002, xlsx_bytes


def test_utf8_text() -> None:
    text, fmt = read_document_text(seed_text("000").encode("utf-8"), "分工.txt")
    assert fmt == "txt"
    assert text == seed_text("000")


def test_gb18030_text_gives_the_same_tasks() -> None:
    data = seed_text("002").encode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # the test input really is not UTF-8
    text, fmt = read_document_text(data, "002.TXT")
    document = parse_document(text, fmt=fmt)
    assert document.to_json_dict() == parsed_seed("002").to_json_dict()


def test_utf8_bom_and_crlf_line_endings() -> None:
    data = "\ufeff" + seed_text("000").replace("\n", "\r\n")
    text, _ = read_document_text(data.encode("utf-8"), "a.txt")
    assert not text.startswith("\ufeff")
    assert "\r" not in text
    assert len(parse_document(text).tasks) == 170


def test_binary_data_is_refused_with_a_bilingual_message() -> None:
    with pytest.raises(UnreadableDocument) as raised:
        read_document_text(b"\x00\x01\x02binary", "a.txt")
    assert "二进制" in raised.value.message_zh and "binary" in raised.value.message_en


def test_empty_file_is_refused() -> None:
    with pytest.raises(UnreadableDocument):
        read_document_text(b"  \n", "a.txt")


def test_office_file_named_txt_is_refused() -> None:
    with pytest.raises(UnreadableDocument):
        read_document_text(xlsx_bytes([["a", "b"]]), "a.txt")


@pytest.mark.parametrize("name", ["a.doc", "a.pdf", "a.xls", "a.wps"])
def test_unsupported_formats(name: str) -> None:
    with pytest.raises(UnsupportedFormat) as raised:
        read_document_text(b"whatever", name)
    assert name in str(raised.value)


def test_corrupt_docx_is_unreadable() -> None:
    with pytest.raises(UnreadableDocument):
        read_document_text(b"PK\x03\x04 not really a zip", "a.docx")


def test_docx_of_seed_002_gives_the_same_tasks_and_codes_as_the_text() -> None:
    before, rows, after = table_rows_of_seed_002()
    text, fmt = read_document_text(docx_bytes(before, rows, after), "分解表.docx")
    document = parse_document(text, fmt=fmt)
    assert fmt == "docx"
    assert document.format == "docx"
    assert document.code == parsed_seed("002").code
    assert document.to_json_dict()["tasks"] == parsed_seed("002").to_json_dict()["tasks"]


def test_xlsx_of_seed_002_gives_the_same_tasks_and_codes_as_the_text() -> None:
    _, rows, _ = table_rows_of_seed_002()
    data = xlsx_bytes([["2022年市政府重点工作责任分解表"], *rows])
    text, fmt = read_document_text(data, "分解表.xlsx")
    document = parse_document(text, fmt=fmt)
    assert fmt == "xlsx"
    assert len(document.tasks) == 138
    assert document.code == parsed_seed("002").code
    assert document.to_json_dict()["tasks"] == parsed_seed("002").to_json_dict()["tasks"]


def test_docx_of_the_inline_seed_gives_the_same_codes() -> None:
    paragraphs = seed_text("000").split("\n")
    document = Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)
    text, fmt = read_document_text(buffer.getvalue(), "分工.docx")
    parsed = parse_document(text, fmt=fmt)
    assert [t.code for t in parsed.tasks] == [t.code for t in parsed_seed("000").tasks]


def test_docx_table_with_merged_cells() -> None:
    document = Document()
    table = document.add_table(rows=4, cols=4)
    title = table.cell(0, 0).merge(table.cell(0, 3))
    title.text = "2023年重点工作责任分解表"
    for cell, value in zip(
        table.rows[1].cells, ["序号", "主要任务", "重点工作", "责任单位"], strict=True
    ):
        cell.text = value
    section = table.cell(2, 1).merge(table.cell(3, 1))
    section.text = "一、稳增长"
    for row, values in (
        (2, ["1", "推进改革。", "市财政局\n市税务局"]),
        (3, ["2", "扩大消费。", "市商务局"]),
    ):
        table.cell(row, 0).text = values[0]
        table.cell(row, 2).text = values[1]
        table.cell(row, 3).text = values[2]
    buffer = io.BytesIO()
    document.save(buffer)
    text, fmt = read_document_text(buffer.getvalue(), "a.docx")
    parsed = parse_document(text, fmt=fmt)
    assert parsed.title == "2023年重点工作责任分解表"
    first, second = parsed.tasks
    assert (first.section, second.section) == ("一、稳增长", "一、稳增长")
    assert (first.lead_units, first.co_units) == (("市财政局",), ("市税务局",))
    assert second.lead_units == ("市商务局",)


def test_xlsx_dates_and_numbers_are_written_as_the_document_would() -> None:
    data = xlsx_bytes(
        [
            ["2023年重点工作责任分解表"],
            ["序号", "重点工作", "完成时限", "分管领导", "责任单位"],
            [1.0, "推进改革。", date(2023, 6, 30), "王卫东", "市财政局\n市税务局"],
            [2, "扩大消费。", "年底前完成", "王旭", "市商务局"],
        ]
    )
    text, fmt = read_document_text(data, "a.xlsx")
    first, second = parse_document(text, fmt=fmt).tasks
    assert first.item == "1"
    assert first.deadline.due == date(2023, 6, 30)
    assert first.co_units == ("市税务局",)
    assert second.deadline.due == date(2023, 12, 31)
