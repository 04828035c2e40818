"""How much of an uploaded document the readers will look at before refusing it.

Every limit is checked before the heavy work starts: the file size before anything is
read, the zip directory (member count, sizes, expansion ratio) before any member is
decompressed, and each XML part with a streaming, DTD-refusing scan (element count, text
node size; for worksheets also the declared dimension and the real cells) before
python-docx or openpyxl builds anything from it. The defaults hold any real
task-division document by a wide margin; docs/catalog.md lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024

MAX_FILE_BYTES = 20 * MIB
"""The uploaded file itself (also the HTTP upload limit)."""
MAX_ZIP_MEMBERS = 2_000
"""Members of a .docx/.xlsx package."""
MAX_MEMBER_BYTES = 32 * MIB
"""Any one member, uncompressed."""
MAX_TOTAL_BYTES = 128 * MIB
"""All members together, uncompressed."""
MAX_EXPANSION_RATIO = 100
"""Uncompressed / compressed size of a member larger than RATIO_FLOOR_BYTES."""
RATIO_FLOOR_BYTES = 1 * MIB
"""Members smaller than this are not held to the expansion ratio (tiny XML packs well)."""
MAX_XML_ELEMENTS = 500_000
"""Elements in one XML part."""
MAX_TEXT_CHARS = 1_000_000
"""Characters in one text node (one run of text between tags)."""
MAX_SHEETS = 50
"""Worksheets in a workbook."""
MAX_SHEET_ROWS = 10_000
"""Rows of a worksheet, declared (<dimension>) or real (a cell's reference)."""
MAX_SHEET_COLUMNS = 100
"""Columns of a worksheet (100 = CV), declared or real."""
MAX_WORKBOOK_CELLS = 300_000
"""Cells present in all worksheets together."""


@dataclass(frozen=True)
class ReadLimits:
    """The limits one read is held to; the defaults are the module constants."""

    max_file_bytes: int = MAX_FILE_BYTES
    max_zip_members: int = MAX_ZIP_MEMBERS
    max_member_bytes: int = MAX_MEMBER_BYTES
    max_total_bytes: int = MAX_TOTAL_BYTES
    max_expansion_ratio: int = MAX_EXPANSION_RATIO
    ratio_floor_bytes: int = RATIO_FLOOR_BYTES
    max_xml_elements: int = MAX_XML_ELEMENTS
    max_text_chars: int = MAX_TEXT_CHARS
    max_sheets: int = MAX_SHEETS
    max_sheet_rows: int = MAX_SHEET_ROWS
    max_sheet_columns: int = MAX_SHEET_COLUMNS
    max_workbook_cells: int = MAX_WORKBOOK_CELLS


DEFAULT_LIMITS = ReadLimits()
