"""The responsibility table (责任分解表): 序号/主要任务/重点工作/完成时限/分管领导/责任单位.

Layout as copied from the published page (and as `readers` renders .docx and .xlsx
tables): a row starts after a blank line; each cell starts on a line beginning with a tab;
a line without a tab continues the cell above it (one unit or leader per line, sometimes
with blank lines between). The section (主要任务) is filled only on its first row. A
footnote (注：…) ends the table; so does prose after a complete row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from services.tracker.catalog.model import ParsedTask
from services.tracker.catalog.parsers.common import ImportContext, SourceText
from services.tracker.catalog.targets import extract_targets
from services.tracker.catalog.text import fold_width, to_simplified
from services.tracker.catalog.units import split_units

Role = Literal["item", "section", "text", "deadline", "leaders", "units", "lead", "co", "other"]

# Exact header names first; then substrings, most specific first (主要任务 before 任务).
_EXACT_ROLES: dict[str, Role] = {
    "序号": "item", "编号": "item", "序": "item",
    "主要任务": "section", "任务类别": "section", "工作类别": "section", "类别": "section",
    "板块": "section", "领域": "section",
    "重点工作": "text", "工作任务": "text", "任务内容": "text", "具体任务": "text",
    "工作内容": "text", "重点任务": "text", "主要内容": "text", "任务": "text",
    "完成时限": "deadline", "完成时间": "deadline", "时间节点": "deadline", "时限": "deadline",
    "分管领导": "leaders", "分管市领导": "leaders", "责任领导": "leaders",
    "牵头市领导": "leaders", "市领导": "leaders", "分管区领导": "leaders",
    "责任单位": "units", "责任部门": "units", "承办单位": "units",
    "牵头单位": "lead", "牵头部门": "lead",
    "配合单位": "co", "协办单位": "co", "配合部门": "co",
}  # fmt: skip
_SUBSTRING_ROLES: tuple[tuple[str, Role], ...] = (
    ("序号", "item"),
    ("牵头单位", "lead"),
    ("配合单位", "co"),
    ("责任单位", "units"),
    ("领导", "leaders"),
    ("时限", "deadline"),
    ("时间", "deadline"),
    ("主要任务", "section"),
    ("工作", "text"),
    ("任务", "text"),
)
_FOOTNOTE = re.compile(r"^注\s*[:：]|^备注\s*[:：]|^说明\s*[:：]")
_ATTACHMENT_LABEL = re.compile(r"^附件\s*\d*\s*[:：]?$")
_STATED_COUNT = re.compile(r"分解为\s*(\d+)\s*项|共\s*(\d+)\s*项重点工作")
_LEADER_SPLIT = re.compile(r"[、，,；;/\s]+")
_SECTION_ORDINAL = re.compile(r"^[一二三四五六七八九十]+、")
# 合计 / 小计 / 总计 / 共计 rows sum the table up; 合计：12项 counts too.
_TOTAL_ROW = re.compile(r"^[合小总共]计(?:[:：]?\d*项?)?$")


@dataclass
class _Cell:
    line: int
    parts: list[str] = field(default_factory=list)

    @property
    def joined(self) -> str:
        # Chinese lines are broken mid-sentence: continuation joins with nothing between.
        return "".join(self.parts)


@dataclass
class _Row:
    line: int
    cells: list[_Cell] = field(default_factory=list)


@dataclass(frozen=True)
class TableHeader:
    """Where the header row is and what each column holds."""

    first_line: int  # 0-based index of the header's first cell line
    end: int  # 0-based index just past the header
    names: tuple[str, ...]
    roles: tuple[Role, ...]


def _role(name: str) -> Role:
    name = re.sub(r"\s", "", to_simplified(name))
    if name in _EXACT_ROLES:
        return _EXACT_ROLES[name]
    for needle, role in _SUBSTRING_ROLES:
        if needle in name:
            return role
    return "other"


def _is_cell_line(line: str) -> bool:
    return line.startswith("\t")


def find_header(source: SourceText) -> TableHeader | None:
    """The first run of tab cells that names an item, task text and unit column."""
    lines = source.simplified
    index = 0
    while index < len(lines):
        if not _is_cell_line(lines[index]):
            index += 1
            continue
        end = index
        while end < len(lines) and _is_cell_line(lines[end]):
            end += 1
        names = tuple(line.strip() for line in lines[index:end])
        roles = tuple(_role(name) for name in names)
        if (
            len(names) >= 3
            and "item" in roles
            and "text" in roles
            and ("units" in roles or "lead" in roles)
        ):
            return TableHeader(first_line=index, end=end, names=names, roles=roles)
        index = end
    return None


def table_title(source: SourceText, header: TableHeader) -> tuple[str, str] | None:
    """The line just above the header (skipping 附件 labels): the table's own title."""
    for index in range(header.first_line - 1, -1, -1):
        text = source.simplified[index].strip()
        if not text or _ATTACHMENT_LABEL.match(text):
            continue
        if _is_cell_line(source.simplified[index]) or len(text) > 60:
            return None
        return text, source.original[index].strip()
    return None


def _looks_like_prose(text: str) -> bool:
    return "。" in text or "：" in text or ":" in text or len(text) > 30


def _collect_rows(source: SourceText, header: TableHeader) -> list[_Row]:
    rows: list[_Row] = []
    row: _Row | None = None
    blank_before = False
    width = len(header.names)
    for index in range(header.end, len(source)):
        raw = source.original[index]
        number = index + 1
        if not raw.strip() and not _is_cell_line(raw):
            blank_before = True
            continue
        if _is_cell_line(raw):
            if row is None or blank_before or len(row.cells) >= width:
                row = _Row(line=number)
                rows.append(row)
            row.cells.append(_Cell(line=number, parts=[raw.strip()] if raw.strip() else []))
        else:
            text = raw.strip()
            if _FOOTNOTE.match(text):
                break
            if row is None:
                blank_before = False
                continue
            if blank_before and len(row.cells) >= width and _looks_like_prose(text):
                break
            row.cells[-1].parts.append(text)
        blank_before = False
    return [row for row in rows if not _is_repeated_header(row, header)]


def _is_repeated_header(row: _Row, header: TableHeader) -> bool:
    # Tables split across pages repeat their header; it is not a task.
    names = tuple(to_simplified(cell.joined) for cell in row.cells)
    return names == header.names


class _RowReader:
    """Turns one table row into a task, warning about what is missing."""

    def __init__(self, context: ImportContext, header: TableHeader) -> None:
        self.context = context
        self.header = header
        self.section: str | None = None
        self.used_codes: set[str] = set()

    def cells(self, row: _Row, role: Role) -> list[_Cell]:
        return [
            cell
            for cell, cell_role in zip(row.cells, self.header.roles, strict=False)
            if cell_role == role
        ]

    def text_of(self, row: _Row, role: Role) -> str:
        return "".join(cell.joined for cell in self.cells(row, role))

    def parts_of(self, row: _Row, role: Role) -> list[str]:
        return [part for cell in self.cells(row, role) for part in cell.parts]

    def line_of(self, row: _Row, role: Role) -> int:
        cells = self.cells(row, role)
        return cells[0].line if cells else row.line

    def read(self, row: _Row) -> ParsedTask | None:
        context = self.context
        first = next((cell.joined for cell in row.cells if cell.joined.strip()), "")
        if _TOTAL_ROW.match(re.sub(r"\s", "", to_simplified(first))):
            context.warn(row.line, f"“{first.strip()}”行不是任务，已跳过 / total row; skipped")
            return None
        self._read_section(row)
        item = fold_width(to_simplified(self.text_of(row, "item"))).strip()
        if not item:
            context.warn(row.line, "该行没有序号，不是任务，已跳过 / row has no number; skipped")
            return None
        width = len(self.header.names)
        if len(row.cells) < width:
            context.warn(
                row.line,
                f"该行只有{len(row.cells)}列（表头有{width}列），缺少的列按空白处理 / "
                f"row has {len(row.cells)} of {width} columns; missing ones read as empty",
            )
        text_original = self.text_of(row, "text").strip()
        text = to_simplified(text_original)
        text_line = self.line_of(row, "text")
        if not text:
            context.warn(row.line, f"第{item}项没有工作内容，已跳过 / item {item} has no task text")
            return None
        for part_line in (cell.line for cell in self.cells(row, "text")):
            context.check_line_quality(part_line, source_line_text(row, part_line))
        lead_units, co_units = self._units(row, item)
        leaders = self._leaders(row, item)
        deadline, milestones = context.read_deadline(
            to_simplified(self.text_of(row, "deadline")),
            line=self.line_of(row, "deadline"),
            task_text=text,
        )
        return ParsedTask(
            code=context.unique_code(item, 1, self.used_codes, line=row.line),
            section=self.section,
            item=item,
            text=text,
            text_original=text_original,
            lead_units=tuple(lead_units),
            co_units=tuple(co_units),
            leaders=tuple(leaders),
            deadline=deadline,
            milestones=tuple(milestones),
            targets=tuple(extract_targets(text)),
            line=text_line,
        )

    def _read_section(self, row: _Row) -> None:
        section = to_simplified(self.text_of(row, "section")).strip()
        if not section:
            return
        ordinal = _SECTION_ORDINAL.match(section)
        current = _SECTION_ORDINAL.match(self.section or "")
        if ordinal and current and ordinal.group(0) == current.group(0):
            # A table split across pages repeats its section on the new page, sometimes
            # worded differently; the number says it is the same section.
            if section != self.section:
                self.context.warn(
                    self.line_of(row, "section"),
                    f"主要任务“{section}”与前文“{self.section}”编号相同而文字不同，按前文归类 / "
                    "section repeated with different wording; kept the first wording",
                )
            return
        self.section = section

    def _units(self, row: _Row, item: str) -> tuple[list[str], list[str]]:
        registry = self.context.registry
        named_leads = split_units(self.parts_of(row, "lead"), registry)
        units = split_units(self.parts_of(row, "units"), registry)
        co = split_units(self.parts_of(row, "co"), registry)
        if "lead" in self.header.roles:
            lead_units = named_leads
            co_units = [unit for unit in units + co if unit not in lead_units]
        else:
            # The table's footnote: the first unit listed is the lead, the others co-units.
            lead_units = units[:1]
            co_units = [unit for unit in units[1:] + co if unit not in lead_units]
        if not lead_units:
            self.context.warn(
                self.line_of(row, "units" if "units" in self.header.roles else "lead"),
                f"第{item}项没有牵头单位 / item {item} names no lead unit",
            )
        return lead_units, co_units

    def _leaders(self, row: _Row, item: str) -> list[str]:
        if "leaders" not in self.header.roles:
            return []
        leaders: list[str] = []
        for part in self.parts_of(row, "leaders"):
            for name in _LEADER_SPLIT.split(to_simplified(part)):
                if name and name not in leaders:
                    leaders.append(name)
        if not leaders:
            self.context.warn(
                self.line_of(row, "leaders"),
                f"第{item}项没有分管领导 / item {item} names no supervising leader",
            )
        return leaders


def source_line_text(row: _Row, line: int) -> str:
    """The text of one cell line of a row (for quality checks)."""
    for cell in row.cells:
        if cell.line == line:
            return cell.joined
    return ""


def parse_table(
    source: SourceText, header: TableHeader, context: ImportContext
) -> list[ParsedTask]:
    """Read every row of the responsibility table into a task."""
    reader = _RowReader(context, header)
    tasks = [task for row in _collect_rows(source, header) if (task := reader.read(row))]
    _check_stated_count(source, header, tasks, context)
    return tasks


def _check_stated_count(
    source: SourceText, header: TableHeader, tasks: list[ParsedTask], context: ImportContext
) -> None:
    """The notice often says how many tasks the table has; a mismatch means rows were lost."""
    for index in range(header.first_line):
        match = _STATED_COUNT.search(source.simplified[index])
        if match is None:
            continue
        stated = int(match.group(1) or match.group(2))
        if stated != len(tasks):
            context.warn(
                index + 1,
                f"文件称共{stated}项，实际读取{len(tasks)}项 / "
                f"the notice states {stated} tasks but {len(tasks)} were read",
            )
        return
