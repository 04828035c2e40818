"""A district work plan: themed paragraphs under （一）… headings, with numeric targets.

`促进教育更加优质均衡。推进…,新增学位1500个。…` becomes one task with the target
(新增学位, 1500, 个). Such plans name no units and no deadlines; the tasks come without
them and one warning says so, for the office to complete.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.tracker.catalog.deadlines import find_deadline_in_text
from services.tracker.catalog.model import NO_DEADLINE, ParsedTask
from services.tracker.catalog.parsers.common import (
    PART_HEADING,
    SECTION_HEADING,
    ImportContext,
    SourceText,
)
from services.tracker.catalog.targets import extract_targets

_THEME = re.compile(r"^[^，,。；;：:]{2,20}。")
_ADDRESS = re.compile(r"^各位代表")  # the speaker turning to the audience: rhetoric, not work
_END = re.compile(r"^(?:附注|附件|注|名词解释)\s*[:：]?\s*$|法律声明|主办单位|版权所有")
_EXPECTED_TARGETS = re.compile(r"主要预期目标")
_HEADING_MAX = 60


@dataclass(frozen=True)
class _Paragraph:
    line: int
    section: str | None
    simplified: str
    original: str


def _is_heading(text: str) -> bool:
    return (
        bool(SECTION_HEADING.match(text) or PART_HEADING.match(text))
        and len(text) <= _HEADING_MAX
        and "。" not in text
    )


def _paragraphs(source: SourceText) -> list[_Paragraph]:
    paragraphs: list[_Paragraph] = []
    section: str | None = None
    in_plan = False
    for index, simplified in enumerate(source.simplified):
        text = simplified.strip()
        if not text:
            continue
        if _END.search(text):
            if in_plan:
                break
            continue
        if _is_heading(text):
            section = text
            in_plan = in_plan or bool(SECTION_HEADING.match(text))
            continue
        original = source.original[index].strip()
        if _EXPECTED_TARGETS.search(text) and extract_targets(text):
            paragraphs.append(_Paragraph(index + 1, "主要预期目标", text, original))
        elif in_plan and not _ADDRESS.match(text):
            paragraphs.append(_Paragraph(index + 1, section, text, original))
    return paragraphs


def looks_like_district_plan(source: SourceText) -> bool:
    """Section headings with several themed paragraphs and at least one numeric target."""
    paragraphs = _paragraphs(source)
    sections = {paragraph.section for paragraph in paragraphs}
    themed = [p for p in paragraphs if _THEME.match(p.simplified)]
    has_targets = any(extract_targets(p.simplified) for p in paragraphs)
    return len(sections) >= 2 and len(themed) >= 3 and has_targets


def parse_district_plan(source: SourceText, context: ImportContext) -> list[ParsedTask]:
    """Every plan paragraph becomes a task without units, with the targets it states."""
    tasks: list[ParsedTask] = []
    used: set[str] = set()
    for ordinal, paragraph in enumerate(_paragraphs(source), start=1):
        context.check_line_quality(paragraph.line, paragraph.original)
        item = str(ordinal)
        tasks.append(
            ParsedTask(
                code=context.unique_code(item, 1, used, line=paragraph.line),
                section=paragraph.section,
                item=item,
                text=paragraph.simplified,
                text_original=paragraph.original,
                lead_units=(),
                co_units=(),
                leaders=(),
                deadline=find_deadline_in_text(paragraph.simplified, year=context.year)
                or NO_DEADLINE,
                milestones=(),
                targets=tuple(extract_targets(paragraph.simplified)),
                line=paragraph.line,
            )
        )
    if tasks:
        context.warn(
            None,
            f"工作计划未列责任单位和完成时限：{len(tasks)}项任务已导入，需补充后下发 / "
            f"the plan names no units or deadlines: {len(tasks)} tasks imported without them",
        )
    return tasks
