"""Reading a task-division document: recognise its layout, find title and year, dispatch.

Layouts, tried in this order:
- "table": a responsibility table with a 序号 / 重点工作 / 责任单位 header;
- "five_year_plan": a five-year plan (proposal) with numbered goals;
- "inline": numbered items closed by responsibility clauses, or with 牵头单位： lines;
- "district_plan": themed paragraphs under （一）… headings with numeric targets.
Anything else raises `NotATaskDocument`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from services.tracker.catalog.codes import document_code
from services.tracker.catalog.deadlines import chinese_number, chinese_year
from services.tracker.catalog.errors import NotATaskDocument, YearNotFound
from services.tracker.catalog.model import (
    DocumentKind,
    ParsedDocument,
    ParsedTask,
    PlanGoal,
    Warning,
)
from services.tracker.catalog.parsers.common import ImportContext, SourceText
from services.tracker.catalog.parsers.district import looks_like_district_plan, parse_district_plan
from services.tracker.catalog.parsers.inline import count_clauses, has_label_lines, parse_inline
from services.tracker.catalog.parsers.plan import (
    count_plan_goals,
    looks_like_five_year_plan,
    parse_plan,
    plan_period,
)
from services.tracker.catalog.parsers.table import find_header, parse_table, table_title
from services.tracker.catalog.units import UnitRegistry

__all__ = ["NotATaskDocument", "detect_kind", "parse_document"]

# 各区人民政府，市政府各委、办、局：— the addressees of a notice; its title is just above.
_ADDRESSEE = re.compile(r"^各[^。]{1,40}[:：]$")
_TITLE_ENDING = re.compile(
    r"(?:通知|方案|分解表|分工|计划|要点|规划|建议|报告|情况|清单|意见|安排|任务|台账)$"
)
_TITLE_NOISE = re.compile(r"[丨|]|网站|首页|无障碍|关怀版|发布日期|来源[:：]")
_YEAR_IN_TITLE = re.compile(r"((?:19|20)\d{2})\s*年")
_DATE_LINE = re.compile(
    r"^[（(]?\s*(?P<year>(?:19|20)\d{2}|[〇零一二三四五六七八九]{4})\s*年\s*"
    r"(?P<month>1[0-2]|0?[1-9]|十[一二]?|[一二三四五六七八九])\s*月\s*"
    r"(?P<day>[12]\d|3[01]|0?[1-9]|[一二]?十[一二三四五六七八九]?|三十一?|[一二三四五六七八九])\s*日"
)
_MAX_TITLE_LINES = 3
_MAX_TITLE_LENGTH = 60
_TITLE_SEARCH_LINES = 40


@dataclass(frozen=True)
class _Title:
    simplified: str
    original: str


def detect_kind(source: SourceText, registry: UnitRegistry | None = None) -> DocumentKind | None:
    """Which layout the text is in, or None if it is not a task document."""
    registry = registry or UnitRegistry()
    if find_header(source) is not None:
        return "table"
    title = _heading_title(source)
    if title and looks_like_five_year_plan(title.simplified) and count_plan_goals(source) >= 3:
        return "five_year_plan"
    if count_clauses(source, registry) > 0 or has_label_lines(source):
        return "inline"
    if looks_like_district_plan(source):
        return "district_plan"
    return None


def _notice_title(source: SourceText) -> _Title | None:
    """The lines just above the addressee line of a notice (通知), joined."""
    for index, line in enumerate(source.simplified):
        if not _ADDRESSEE.match(line.strip()):
            continue
        picked: list[int] = []
        cursor = index - 1
        while cursor >= 0 and len(picked) < _MAX_TITLE_LINES:
            text = source.simplified[cursor].strip()
            cursor -= 1
            if not text:
                continue
            if text.endswith((":", "：", "。")) or len(text) > _MAX_TITLE_LENGTH:
                break
            picked.insert(0, cursor + 1)
        if picked:
            return _Title(
                "".join(source.simplified[i].strip() for i in picked),
                "".join(source.original[i].strip() for i in picked),
            )
    return None


def _heading_title(source: SourceText) -> _Title | None:
    """The first short line near the top that reads like a document title."""
    for index, line in enumerate(source.simplified[:_TITLE_SEARCH_LINES]):
        text = line.strip()
        if (
            text
            and len(text) <= _MAX_TITLE_LENGTH
            and not _TITLE_NOISE.search(text)
            and _TITLE_ENDING.search(text)
        ):
            return _Title(text, source.original[index].strip())
    return None


def _first_line_title(source: SourceText) -> _Title:
    for index, line in enumerate(source.simplified):
        if line.strip():
            return _Title(line.strip()[:_MAX_TITLE_LENGTH], source.original[index].strip()[:60])
    raise NotATaskDocument("文件为空", "the document is empty")


def _find_title(source: SourceText, kind: DocumentKind) -> _Title:
    if kind == "table":
        header = find_header(source)
        found = table_title(source, header) if header else None
        if found:
            # The table's own title: the same whether the file holds the notice or only the table.
            return _Title(*found)
    if kind == "five_year_plan":
        heading = _heading_title(source)
        if heading:
            return heading
    return _notice_title(source) or _heading_title(source) or _first_line_title(source)


def _document_date_year(source: SourceText) -> int | None:
    for line in source.simplified:
        match = _DATE_LINE.match(line.strip())
        if match:
            # Validate the whole date so 2022年13月 in running text is not taken for a date line.
            month = chinese_number(match["month"])
            if 1 <= month <= 12:
                return chinese_year(match["year"])
    return None


def _find_year(
    title: _Title, source: SourceText, period: tuple[int, int] | None, explicit: int | None
) -> int:
    if explicit is not None:
        return explicit
    in_title = _YEAR_IN_TITLE.search(title.simplified)
    if in_title:
        return int(in_title.group(1))
    dated = _document_date_year(source)
    if dated is not None:
        return dated
    if period is not None:
        return period[0]
    raise YearNotFound()


def parse_document(
    text: str,
    *,
    fmt: str = "txt",
    year: int | None = None,
    origins: Sequence[str | None] = (),
    notes: Sequence[Warning] = (),
) -> ParsedDocument:
    """Parse a task-division document's text; raises NotATaskDocument for anything else.

    `origins` and `notes` come from the reader (`DocumentText`): where each line came from,
    so warnings name a worksheet row, and the reader's own warnings, listed first.
    """
    source = SourceText.from_text(text)
    registry = UnitRegistry()
    registry.learn_from_text(text)
    kind = detect_kind(source, registry)
    if kind is None:
        raise NotATaskDocument()
    title = _find_title(source, kind)
    period = plan_period(title.simplified) if kind == "five_year_plan" else None
    document_year = _find_year(title, source, period, year)
    code = document_code(title.simplified, document_year)
    context = ImportContext(
        year=document_year,
        document_code=code,
        registry=registry,
        warnings=list(notes),
        origins=origins,
    )
    tasks: list[ParsedTask] = []
    goals: list[PlanGoal] = []
    if kind == "table":
        header = find_header(source)
        assert header is not None  # detect_kind found it
        tasks = parse_table(source, header, context)
    elif kind == "inline":
        tasks = parse_inline(source, context)
    elif kind == "district_plan":
        tasks = parse_district_plan(source, context)
    else:
        goals = parse_plan(source, context, period)
    if not tasks and not goals:
        raise NotATaskDocument("未读到任何任务", "no task could be read")
    return ParsedDocument(
        title=title.simplified,
        year=document_year,
        format=fmt,
        tasks=tuple(tasks),
        goals=tuple(goals),
        warnings=tuple(context.warnings),
        kind=kind,
        code=code,
        title_original=title.original,
        period=period,
    )
