"""Access to the seed documents and small builders shared by the catalog tests."""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from docx import Document
from openpyxl import Workbook

from services.tracker.catalog import ParsedDocument, ParsedTask, parse_document

SEEDS = Path(__file__).resolve().parents[2] / "fixtures" / "seeds"


def seed_path(prefix: str) -> Path:
    """The seed file whose name starts with `prefix` (000, 002, 003, 004)."""
    (path,) = SEEDS.glob(f"{prefix}_*.txt")
    return path


def seed_text(prefix: str) -> str:
    """A seed document's text."""
    return seed_path(prefix).read_text(encoding="utf-8")


@cache
def parsed_seed(prefix: str) -> ParsedDocument:
    """A seed parsed once per test session (parsing is pure, so sharing is safe)."""
    return parse_document(seed_text(prefix))


def tasks_of_item(document: ParsedDocument, item: str) -> list[ParsedTask]:
    """The tasks an item (序号 / numbered item) produced, in clause order."""
    return [task for task in document.tasks if task.item == item]


def table_rows_of_seed_002() -> tuple[list[str], list[list[str]], list[str]]:
    """Split seed 002 into the lines before its table, the table rows, and the lines after.

    Written independently of the importer (a row starts after a blank line, a cell on a
    tab line, other lines continue the cell) so the .docx/.xlsx tests do not reuse the
    code under test to build their input.
    """
    lines = seed_text("002").split("\n")
    start = lines.index("\t序号")
    rows: list[list[str]] = []
    row: list[str] | None = None
    blank = True
    after: list[str] = []
    for index, line in enumerate(lines[start:], start):
        if line.startswith("注"):
            after = lines[index:]
            break
        if line == "":
            blank = True
            continue
        if line.startswith("\t"):
            if blank or row is None:
                row = []
                rows.append(row)
            row.append(line[1:])
        else:
            assert row is not None
            row[-1] += "\n" + line
        blank = False
    return lines[:start], rows, after


def docx_bytes(paragraphs: list[str], rows: list[list[str]], after: list[str]) -> bytes:
    """A .docx with paragraphs, one table (cells may hold several lines) and more paragraphs."""
    document = Document()
    for text in paragraphs:
        document.add_paragraph(text)
    table = document.add_table(rows=0, cols=max(len(row) for row in rows))
    for values in rows:
        cells = table.add_row().cells
        for cell, value in zip(cells, values, strict=False):
            first, *rest = value.split("\n")
            cell.text = first
            for extra in rest:
                cell.add_paragraph(extra)
    for text in after:
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def xlsx_bytes(rows: Sequence[Sequence[object]]) -> bytes:
    """An .xlsx with one sheet holding the rows."""
    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
