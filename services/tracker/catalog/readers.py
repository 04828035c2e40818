"""Turning uploaded bytes into the text the parsers read: .txt, .docx and .xlsx.

Tables in .docx and .xlsx are rendered the way the published responsibility table reads
when copied as text, so one table parser serves all three formats: a blank line before
each row, each cell on a line starting with a tab, further lines of a cell without one.
"""

from __future__ import annotations

import codecs
import io
import zipfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import PurePath
from typing import Any

from services.tracker.catalog.errors import UnreadableDocument, UnsupportedFormat

_TEXT_SUFFIXES = {"", ".txt", ".text"}
_ZIP_MAGIC = b"PK\x03\x04"


def decode_text(data: bytes) -> str:
    """Decode plain text: BOM if any, else UTF-8, else GB18030; refuse binary data."""
    if not data.strip():
        raise UnreadableDocument("文件为空", "the file is empty")
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return _clean(data.decode(encoding))
    if b"\x00" in data:
        raise UnreadableDocument(
            "文件不是文本（含有二进制内容）", "the file is not text (it holds binary data)"
        )
    # UTF-8 first: GB18030 text is almost never valid UTF-8, while the reverse often is.
    for encoding in ("utf-8", "gb18030"):
        try:
            return _clean(data.decode(encoding))
        except UnicodeDecodeError:
            continue
    raise UnreadableDocument(
        "无法识别文件编码（支持UTF-8和GB18030）",
        "cannot decode the file (UTF-8 and GB18030 are supported)",
    )


def _clean(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _cell_lines(text: str) -> list[str]:
    return [line.strip() for line in _clean(text).split("\n") if line.strip()]


def render_table(rows: Iterable[list[str]]) -> list[str]:
    """Render table rows in the tab-cell layout; single-cell rows (titles) as plain lines."""
    lines: list[str] = []
    for cells in rows:
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) == 1:
            lines.extend(["", *_cell_lines(cells[0])])
            continue
        lines.append("")
        for cell in cells:
            cell_lines = _cell_lines(cell)
            lines.append("\t" + (cell_lines[0] if cell_lines else ""))
            lines.extend(cell_lines[1:])
    lines.append("")
    return lines


def _docx_rows(table: Any) -> Iterator[list[str]]:
    for row in table.rows:
        cells: list[str] = []
        previous: Any = None
        for cell in row.cells:
            # A horizontally merged cell is returned once per grid column; keep it once.
            if previous is not None and cell._tc is previous:
                continue
            previous = cell._tc
            cells.append("\n".join(paragraph.text for paragraph in cell.paragraphs))
        yield cells


def docx_to_text(data: bytes) -> str:
    """Paragraphs and tables of a .docx in document order, tables in the tab-cell layout."""
    from docx import Document
    from docx.table import Table

    try:
        document = Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise UnreadableDocument(
            "无法打开Word文件（.docx）", f"cannot open the .docx file ({error})"
        ) from error
    lines: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            lines.extend(render_table(_docx_rows(block)))
        else:
            lines.extend(_clean(block.text).split("\n"))
    return "\n".join(lines)


def _xlsx_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        # Written out as Chinese text so the deadline reader sees an explicit date.
        return f"{value.year}年{value.month}月{value.day}日"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def xlsx_to_text(data: bytes) -> str:
    """Every sheet's rows: single-value rows as plain lines, others in the tab-cell layout."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise UnreadableDocument(
            "无法打开Excel文件（.xlsx）", f"cannot open the .xlsx file ({error})"
        ) from error
    lines: list[str] = []
    try:
        for sheet in workbook.worksheets:
            rows = [
                [_xlsx_value(value) for value in row] for row in sheet.iter_rows(values_only=True)
            ]
            width = max(
                (
                    max((i + 1 for i, cell in enumerate(row) if cell.strip()), default=0)
                    for row in rows
                ),
                default=0,
            )
            table_rows: list[list[str]] = []
            for row in rows:
                filled = [cell for cell in row if cell.strip()]
                if len(filled) == 1 and _is_title_row(row):
                    table_rows.append([filled[0]])
                elif filled:
                    table_rows.append((row + [""] * width)[:width])
            lines.extend(render_table(table_rows))
    finally:
        workbook.close()
    return "\n".join(lines)


def _is_title_row(row: list[str]) -> bool:
    # A title or note row has one value, usually in the first column (often merged across).
    return bool(row) and bool(row[0].strip())


def read_document_text(data: bytes, filename: str) -> tuple[str, str]:
    """Decode an uploaded document to text; returns (text, format) with format txt/docx/xlsx."""
    suffix = PurePath(filename).suffix.lower()
    if suffix == ".docx":
        return docx_to_text(data), "docx"
    if suffix in (".xlsx", ".xlsm"):
        return xlsx_to_text(data), "xlsx"
    if suffix in _TEXT_SUFFIXES:
        if data.startswith(_ZIP_MAGIC):
            raise UnreadableDocument(
                f"{filename}看起来是压缩包或Office文件，请使用正确的扩展名",
                f"{filename} looks like a zip/Office file; give it its real extension",
            )
        return decode_text(data), "txt"
    raise UnsupportedFormat(filename)
