"""Checking an Office package (.docx/.xlsx) against the read limits before a parser sees it.

`open_package` reads only the zip directory: member count, each member's uncompressed size
and expansion ratio, the total. zipfile never yields more bytes than a member declares
(a member that lies about its size fails its CRC check), so the checked sizes bound what
any later read can inflate to. `scan_xml_parts` then streams every XML member through
a DTD-refusing SAX parser (defusedxml: no entity bombs, no external entities), counting
elements and text-node sizes without building a tree. `scan_sheet` does the same for a
worksheet and also reads what openpyxl would otherwise trust: the declared dimension,
the real cell references, merged ranges and formulas without a cached value.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import IO
from xml.sax import SAXException
from xml.sax.handler import ContentHandler
from xml.sax.xmlreader import AttributesImpl

from defusedxml import DefusedXmlException
from defusedxml.expatreader import DefusedExpatParser
from openpyxl.utils.cell import column_index_from_string, get_column_letter, range_boundaries

from services.tracker.catalog.errors import DocumentTooLarge, UnreadableDocument
from services.tracker.catalog.limits import MIB, ReadLimits

# Members a parser reads as XML; other members (images, embedded objects) are only
# held to the size and ratio limits, never parsed.
_XML_SUFFIXES = (".xml", ".rels", ".vml")
_CELL_REF = re.compile(r"^\$?([A-Za-z]{1,3})\$?(\d{1,7})$")
_FORMULA_SHOWN = 60  # characters of a formula quoted in a warning
_FORMULAS_KEPT = 100  # formula cells listed per sheet; the rest are counted


def _size(count: int) -> str:
    if count >= MIB:
        return f"{count / MIB:.1f} MB"
    return f"{count / 1024:.0f} KB"


def open_package(data: bytes, label: str, limits: ReadLimits) -> zipfile.ZipFile:
    """The zip archive, after its directory passed the member, size and ratio limits."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as error:
        raise UnreadableDocument(
            f"无法打开{label}：文件不是有效的压缩包（可能已损坏、已加密或是旧版格式）",
            f"cannot open the {label}: not a valid zip package ({error})",
        ) from error
    if len(members) > limits.max_zip_members:
        raise DocumentTooLarge(
            f"{label}包含{len(members)}个压缩成员，超过上限{limits.max_zip_members}个",
            f"the {label} holds {len(members)} zip members; the limit is {limits.max_zip_members}",
        )
    total = 0
    for info in members:
        name = info.filename
        if info.flag_bits & 0x1:
            raise UnreadableDocument(
                f"{label}中的成员{name}已加密，无法读取", f"member {name} is encrypted"
            )
        if info.file_size > limits.max_member_bytes:
            raise DocumentTooLarge(
                f"{label}中的成员{name}解压后为{_size(info.file_size)}，"
                f"超过单个成员上限{_size(limits.max_member_bytes)}",
                f"member {name} inflates to {_size(info.file_size)}; the limit is "
                f"{_size(limits.max_member_bytes)}",
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_floor_bytes and ratio > limits.max_expansion_ratio:
            raise DocumentTooLarge(
                f"{label}中的成员{name}压缩比为{ratio:.0f}:1，超过上限"
                f"{limits.max_expansion_ratio}:1（疑似压缩炸弹）",
                f"member {name} expands {ratio:.0f}:1; the limit is "
                f"{limits.max_expansion_ratio}:1 (zip bomb?)",
            )
        total += info.file_size
    if total > limits.max_total_bytes:
        raise DocumentTooLarge(
            f"{label}解压后共{_size(total)}，超过上限{_size(limits.max_total_bytes)}",
            f"the {label} inflates to {_size(total)} in all; the limit is "
            f"{_size(limits.max_total_bytes)}",
        )
    return archive


class _PartScan(ContentHandler):
    """Counts elements and the characters of each text node, refusing past the limits."""

    def __init__(self, where_zh: str, where_en: str, limits: ReadLimits) -> None:
        super().__init__()
        self.where_zh = where_zh
        self.where_en = where_en
        self.limits = limits
        self.elements = 0
        self.text = 0

    def startElement(self, name: str, attrs: AttributesImpl) -> None:  # noqa: N802 (SAX API)
        self.elements += 1
        self.text = 0
        if self.elements > self.limits.max_xml_elements:
            raise DocumentTooLarge(
                f"{self.where_zh}的XML元素超过{self.limits.max_xml_elements}个",
                f"{self.where_en} has more than {self.limits.max_xml_elements} XML elements",
            )

    def endElement(self, name: str) -> None:  # noqa: N802 (SAX API)
        self.text = 0

    def characters(self, content: str) -> None:
        self.text += len(content)
        if self.text > self.limits.max_text_chars:
            raise DocumentTooLarge(
                f"{self.where_zh}有一段文本超过{self.limits.max_text_chars}个字符",
                f"{self.where_en} holds a text node over {self.limits.max_text_chars} characters",
            )


def _run(archive: zipfile.ZipFile, member: str, handler: _PartScan, label: str) -> None:
    parser = DefusedExpatParser(forbid_dtd=True)
    parser.setContentHandler(handler)
    try:
        with archive.open(member) as stream:
            source: IO[bytes] = stream
            parser.parse(source)
    except DefusedXmlException as error:
        raise UnreadableDocument(
            f"{label}中的{member}含有DTD或实体声明（Office文件不应含有），已拒绝",
            f"{member} declares a DTD or entities, which Office files never do ({error!r})",
        ) from error
    except SAXException as error:
        raise UnreadableDocument(
            f"{label}中的{member}不是有效的XML（{error}）", f"{member} is malformed XML ({error})"
        ) from error
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError) as error:
        raise UnreadableDocument(
            f"{label}中的成员{member}已损坏，无法解压", f"member {member} is corrupt ({error})"
        ) from error


def scan_xml_parts(archive: zipfile.ZipFile, label: str, limits: ReadLimits) -> None:
    """Stream every XML member once through the bounded, DTD-refusing scan."""
    for info in archive.infolist():
        if info.is_dir() or not info.filename.lower().endswith(_XML_SUFFIXES):
            continue
        where_zh = f"{label}中的{info.filename}"
        _run(archive, info.filename, _PartScan(where_zh, info.filename, limits), label)


@dataclass
class CellBudget:
    """Cells (present and merge-filled) the whole workbook may still hold."""

    left: int


@dataclass
class SheetScan:
    """What a worksheet's XML really holds."""

    max_row: int = 0
    max_column: int = 0
    cells: int = 0
    merges: list[tuple[int, int, int, int]] = field(default_factory=list)  # min_col, min_row…
    uncached_formulas: list[tuple[str, str]] = field(default_factory=list)  # (cell, formula)
    uncached_count: int = 0


def _local(name: str) -> str:
    return name.rsplit(":", 1)[-1]


class _SheetScan(_PartScan):
    def __init__(
        self, sheet: str, limits: ReadLimits, budget: CellBudget, result: SheetScan
    ) -> None:
        super().__init__(f"工作表“{sheet}”", f"sheet {sheet!r}", limits)
        self.sheet = sheet
        self.budget = budget
        self.result = result
        self.row = 0
        self.column = 0
        self.cell: str | None = None
        self.formula: str | None = None
        self.cached = False
        self.in_formula = False
        self.in_value = False

    def _bad(self, what: str) -> UnreadableDocument:
        return UnreadableDocument(
            f"工作表“{self.sheet}”的引用“{what[:40]}”无效",
            f"sheet {self.sheet!r}: bad cell reference {what[:40]!r}",
        )

    def _check_bounds(self, rows: int, columns: int, what_zh: str, what_en: str) -> None:
        limits = self.limits
        if rows > limits.max_sheet_rows or columns > limits.max_sheet_columns:
            raise DocumentTooLarge(
                f"工作表“{self.sheet}”{what_zh}超过上限（最多{limits.max_sheet_rows}行、"
                f"{limits.max_sheet_columns}列，即A1:"
                f"{get_column_letter(limits.max_sheet_columns)}{limits.max_sheet_rows}）",
                f"sheet {self.sheet!r}: {what_en} is over the limit of "
                f"{limits.max_sheet_rows} rows and {limits.max_sheet_columns} columns",
            )

    def startElement(self, name: str, attrs: AttributesImpl) -> None:  # noqa: N802 (SAX API)
        super().startElement(name, attrs)
        tag = _local(name)
        if tag == "dimension":
            self._dimension(attrs.get("ref", ""))
        elif tag == "row":
            self._row(attrs.get("r"))
        elif tag == "c":
            self._cell(attrs.get("r"))
        elif tag == "f" and self.cell is not None:
            self.formula = ""
            self.in_formula = True
        elif tag in ("v", "is") and self.cell is not None:
            self.in_value = True
        elif tag == "mergeCell":
            self._merge(attrs.get("ref", ""))

    def endElement(self, name: str) -> None:  # noqa: N802 (SAX API)
        super().endElement(name)
        tag = _local(name)
        if tag == "f":
            self.in_formula = False
        elif tag in ("v", "is"):
            self.in_value = False
        elif tag == "c" and self.cell is not None:
            if self.formula is not None and not self.cached:
                self.result.uncached_count += 1
                if len(self.result.uncached_formulas) < _FORMULAS_KEPT:
                    self.result.uncached_formulas.append((self.cell, self.formula))
            self.cell = None

    def characters(self, content: str) -> None:
        super().characters(content)
        if self.in_formula and self.formula is not None and len(self.formula) < _FORMULA_SHOWN:
            self.formula += content[:_FORMULA_SHOWN]
        if self.in_value and content.strip():
            self.cached = True

    def _dimension(self, ref: str) -> None:
        try:
            min_col, min_row, max_col, max_row = range_boundaries(ref.upper())
        except (ValueError, TypeError) as error:
            raise self._bad(ref) from error
        self._check_bounds(
            max_row or min_row or 0,
            max_col or min_col or 0,
            f"声明的范围{ref}",
            f"the declared dimension {ref}",
        )

    def _row(self, number: str | None) -> None:
        if number is None:
            self.row += 1
        elif number.isdigit():
            self.row = int(number)
        else:
            raise self._bad(number)
        self.column = 0

    def _cell(self, ref: str | None) -> None:
        if ref is None:
            self.column += 1
        else:
            match = _CELL_REF.match(ref)
            if match is None:
                raise self._bad(ref)
            self.column = column_index_from_string(match.group(1).upper())
            self.row = int(match.group(2))
        self.cell = f"{get_column_letter(min(self.column, 18278))}{self.row}"
        self.formula = None
        self.cached = False
        self._check_bounds(self.row, self.column, f"的单元格{self.cell}", f"cell {self.cell}")
        self.result.cells += 1
        self.result.max_row = max(self.result.max_row, self.row)
        self.result.max_column = max(self.result.max_column, self.column)
        self._spend(1)

    def _merge(self, ref: str) -> None:
        try:
            min_col, min_row, max_col, max_row = range_boundaries(ref.upper())
        except (ValueError, TypeError) as error:
            raise self._bad(ref) from error
        if None in (min_col, min_row, max_col, max_row):
            raise self._bad(ref)
        self._check_bounds(max_row, max_col, f"的合并区域{ref}", f"merged range {ref}")
        # Filling a merge writes one cell per row below its first: charge them.
        self._spend(max_row - min_row)
        self.result.merges.append((min_col, min_row, max_col, max_row))

    def _spend(self, cells: int) -> None:
        self.budget.left -= cells
        if self.budget.left < 0:
            raise DocumentTooLarge(
                f"工作簿的单元格超过上限{self.limits.max_workbook_cells}个"
                f"（在工作表“{self.sheet}”处超出）",
                f"the workbook holds more than {self.limits.max_workbook_cells} cells "
                f"(passed in sheet {self.sheet!r})",
            )


def scan_sheet(
    archive: zipfile.ZipFile,
    member: str,
    sheet: str,
    label: str,
    limits: ReadLimits,
    budget: CellBudget,
) -> SheetScan:
    """The real extent of a worksheet, refusing declared or real extents over the limits."""
    result = SheetScan()
    _run(archive, member, _SheetScan(sheet, limits, budget, result), label)
    return result
