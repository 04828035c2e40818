"""Turning uploaded bytes into the text the parsers read: .txt, .docx and .xlsx.

Tables in .docx and .xlsx are rendered the way the published responsibility table reads
when copied as text, so one table parser serves all three formats: a blank line before
each row, each cell on a line starting with a tab, further lines of a cell without one.

A .docx or .xlsx is first held to the limits of `catalog/limits.py` (`catalog/ooxml.py`
checks the zip directory and streams each XML part); only then does python-docx or
openpyxl (read-only, bounded to the sheet's real extent) read it.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import PurePath
from typing import Any

from services.tracker.catalog.errors import (
    DocumentTooLarge,
    UnreadableDocument,
    UnsupportedFormat,
)
from services.tracker.catalog.limits import DEFAULT_LIMITS, MIB, ReadLimits
from services.tracker.catalog.model import Warning
from services.tracker.catalog.ooxml import (
    CellBudget,
    SheetScan,
    open_package,
    scan_sheet,
    scan_xml_parts,
)
from services.tracker.catalog.parsers.common import SourceText
from services.tracker.catalog.parsers.table import find_header

_TEXT_SUFFIXES = {"", ".txt", ".text"}
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class DocumentText:
    """A read document: its text, format, the reader's warnings, and where lines came from.

    `origins[i]` names the place of text line i+1 in the file (工作表“任务”第5行) when the
    line numbers of the text would not tell the operator (worksheets); else it is empty.
    """

    text: str
    format: str
    warnings: tuple[Warning, ...] = ()
    origins: tuple[str | None, ...] = ()


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
    lines, _ = render_rows((cells, None) for cells in rows)
    return lines


def render_rows(rows: Iterable[tuple[list[str], str | None]]) -> tuple[list[str], list[str | None]]:
    """`render_table` for rows that carry where they came from; returns lines and origins."""
    lines: list[str] = []
    origins: list[str | None] = []

    def add(new: list[str], origin: str | None) -> None:
        lines.extend(new)
        origins.extend([origin] * len(new))

    for cells, origin in rows:
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) == 1:
            add(["", *_cell_lines(cells[0])], origin)
            continue
        add([""], origin)
        for cell in cells:
            cell_lines = _cell_lines(cell)
            add(["\t" + (cell_lines[0] if cell_lines else ""), *cell_lines[1:]], origin)
    add([""], None)
    return lines, origins


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


def docx_to_text(data: bytes, limits: ReadLimits = DEFAULT_LIMITS) -> str:
    """Paragraphs and tables of a .docx in document order, tables in the tab-cell layout."""
    from docx import Document
    from docx.table import Table

    label = "Word文件（.docx）"
    archive = open_package(data, label, limits)
    scan_xml_parts(archive, label, limits)
    try:
        document = Document(io.BytesIO(data))
        lines: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                lines.extend(render_table(_docx_rows(block)))
            else:
                lines.extend(_clean(block.text).split("\n"))
    except Exception as error:
        # The package passed the limits, so whatever python-docx trips over is a broken
        # file, not a bug here: say so instead of a traceback.
        raise _broken(label, error) from error
    return "\n".join(lines)


def _broken(label: str, error: Exception) -> UnreadableDocument:
    return UnreadableDocument(
        f"无法读取{label}：文件结构损坏或不完整（{type(error).__name__}）",
        f"cannot read the {label}: broken or incomplete file ({type(error).__name__}: "
        f"{str(error)[:200]})",
    )


def _xlsx_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        # Written out as Chinese text so the deadline reader sees an explicit date.
        return f"{value.year}年{value.month}月{value.day}日"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _fill_merges(rows: list[list[str]], scan: SheetScan) -> None:
    """A cell merged down one column holds its value on every row it spans.

    That is how the .docx reader sees a vertical merge too (a section or unit shared by
    several rows). A merge across columns (a title, a note) keeps its value in its first
    cell only, so it neither spills into another column's role nor repeats a title.
    """
    for min_col, min_row, max_col, max_row in scan.merges:
        if max_col != min_col or min_row > len(rows) or min_col > len(rows[min_row - 1]):
            continue
        value = rows[min_row - 1][min_col - 1]
        for index in range(min_row, min(max_row, len(rows))):
            rows[index][min_col - 1] = value


def _sheet_rows(rows: list[list[str]], sheet: str) -> list[tuple[list[str], str | None]]:
    width = max(
        (max((i + 1 for i, cell in enumerate(row) if cell.strip()), default=0) for row in rows),
        default=0,
    )
    table_rows: list[tuple[list[str], str | None]] = []
    for number, row in enumerate(rows, 1):
        origin = f"工作表“{sheet}”第{number}行"
        filled = [cell for cell in row if cell.strip()]
        if len(filled) == 1 and _is_title_row(row):
            table_rows.append(([filled[0]], origin))
        elif filled:
            table_rows.append(((row + [""] * width)[:width], origin))
    return table_rows


def _has_task_header(lines: list[str]) -> bool:
    return find_header(SourceText.from_text("\n".join(lines))) is not None


def xlsx_to_document(data: bytes, limits: ReadLimits = DEFAULT_LIMITS) -> DocumentText:
    """Every sheet's rows: single-value rows as plain lines, others in the tab-cell layout.

    When some sheet has a task header (序号 / 重点工作 / 责任单位), sheets without one
    (contacts, notes) are skipped with a warning. Formulas are read as their cached
    values; a formula without one reads as empty, with a warning naming the cell.
    """
    from openpyxl import load_workbook

    label = "Excel文件（.xlsx）"
    archive = open_package(data, label, limits)
    scan_xml_parts(archive, label, limits)
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:
        raise _broken(label, error) from error
    notes: list[Warning] = []
    sheets: list[tuple[str, list[str], list[str | None]]] = []
    try:
        if len(workbook.worksheets) > limits.max_sheets:
            raise DocumentTooLarge(
                f"{label}有{len(workbook.worksheets)}个工作表，超过上限{limits.max_sheets}个",
                f"the workbook has {len(workbook.worksheets)} sheets; the limit is "
                f"{limits.max_sheets}",
            )
        budget = CellBudget(limits.max_workbook_cells)
        for sheet in workbook.worksheets:
            # read_only worksheets keep their zip member here (openpyxl 3.1).
            member = getattr(sheet, "_worksheet_path", None)
            if not isinstance(member, str):
                continue
            scan = scan_sheet(archive, member, sheet.title, label, limits, budget)
            if scan.cells == 0:
                continue
            notes.extend(_formula_notes(sheet.title, scan))
            try:
                rows = [
                    [_xlsx_value(value) for value in row]
                    for row in sheet.iter_rows(
                        min_row=1,
                        max_row=scan.max_row,
                        min_col=1,
                        max_col=scan.max_column,
                        values_only=True,
                    )
                ]
            except Exception as error:
                raise _broken(f"{label}的工作表“{sheet.title}”", error) from error
            _fill_merges(rows, scan)
            lines, origins = render_rows(_sheet_rows(rows, sheet.title))
            sheets.append((sheet.title, lines, origins))
    finally:
        workbook.close()
    if not sheets:
        raise UnreadableDocument(
            f"{label}没有任何有内容的工作表", "the workbook has no sheet with any cell"
        )
    with_header = {title for title, lines, _ in sheets if _has_task_header(lines)}
    text_lines: list[str] = []
    text_origins: list[str | None] = []
    for title, lines, origins in sheets:
        if with_header and title not in with_header:
            notes.append(
                Warning(
                    None,
                    f"工作表“{title}”没有任务表头（序号、重点工作、责任单位），整张表已跳过 / "
                    f"sheet {title!r} has no task header; skipped",
                )
            )
            continue
        text_lines.extend(lines)
        text_origins.extend(origins)
    return DocumentText("\n".join(text_lines), "xlsx", tuple(notes), tuple(text_origins))


def _formula_notes(sheet: str, scan: SheetScan) -> list[Warning]:
    notes = [
        Warning(
            None,
            f"工作表“{sheet}”单元格{cell}是公式（={formula}）但没有计算结果，按空白读取；"
            f"请在Excel中打开并保存后重新导入 / cell {cell} of sheet {sheet!r} is a formula "
            "without a cached value; read as empty",
        )
        for cell, formula in scan.uncached_formulas
    ]
    hidden = scan.uncached_count - len(scan.uncached_formulas)
    if hidden > 0:
        notes.append(
            Warning(
                None,
                f"工作表“{sheet}”另有{hidden}个公式单元格没有计算结果 / "
                f"{hidden} more formula cells of sheet {sheet!r} have no cached value",
            )
        )
    return notes


def xlsx_to_text(data: bytes, limits: ReadLimits = DEFAULT_LIMITS) -> str:
    """The text of `xlsx_to_document`."""
    return xlsx_to_document(data, limits).text


def _is_title_row(row: list[str]) -> bool:
    # A title or note row has one value, usually in the first column (often merged across).
    return bool(row) and bool(row[0].strip())


def check_file_size(size: int, filename: str, limits: ReadLimits = DEFAULT_LIMITS) -> None:
    """Refuse a file over the upload limit before reading it."""
    if size > limits.max_file_bytes:
        raise DocumentTooLarge(
            f"文件{filename}超过{limits.max_file_bytes // MIB} MB上限",
            f"{filename} is over the {limits.max_file_bytes // MIB} MB limit",
        )


def read_document(data: bytes, filename: str, limits: ReadLimits = DEFAULT_LIMITS) -> DocumentText:
    """Decode an uploaded document within the read limits, with the reader's own warnings.

    Raises DocumentTooLarge for a file over a limit and UnreadableDocument for one that is
    malformed; both name the sheet, member or limit.
    """
    check_file_size(len(data), filename, limits)
    suffix = PurePath(filename).suffix.lower()
    if suffix == ".docx":
        return DocumentText(docx_to_text(data, limits), "docx")
    if suffix in (".xlsx", ".xlsm"):
        return xlsx_to_document(data, limits)
    if suffix in _TEXT_SUFFIXES:
        if data.startswith(_ZIP_MAGIC):
            raise UnreadableDocument(
                f"{filename}看起来是压缩包或Office文件，请使用正确的扩展名",
                f"{filename} looks like a zip/Office file; give it its real extension",
            )
        return DocumentText(decode_text(data), "txt")
    raise UnsupportedFormat(filename)


def read_document_text(data: bytes, filename: str) -> tuple[str, str]:
    """Decode an uploaded document to text; returns (text, format) with format txt/docx/xlsx."""
    document = read_document(data, filename)
    return document.text, document.format
