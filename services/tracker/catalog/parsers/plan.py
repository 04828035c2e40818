"""A five-year plan proposal: numbered goals (1. … 52.) under 一、… parts, for 2026–2030.

The published copy is in traditional characters and partly mis-decoded: goals keep the
original text, get a simplified text for matching, and every garbled or truncated line
is reported. Unnumbered paragraphs that follow a goal (`——坚持…` lists, second
paragraphs) belong to it; a part's introduction before its first goal belongs to none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from services.tracker.catalog.codes import goal_code
from services.tracker.catalog.deadlines import chinese_number
from services.tracker.catalog.model import PlanGoal
from services.tracker.catalog.parsers.common import (
    NUMBERED_ITEM,
    PART_HEADING,
    ImportContext,
    SourceText,
)
from services.tracker.catalog.text import fold_width, to_simplified

_ORDINAL_PLAN = re.compile(r"第(?P<n>[一二三四五六七八九十]+|\d+)个五年规划")
_SHORT_PLAN = re.compile(r"十(?P<n>[一二三四五六七八九])五")
_TITLE = re.compile(r"^(?P<title>[^，,。；;?？!！]{2,30})[。?？!！]")


def plan_period(title: str) -> tuple[int, int] | None:
    """The years a five-year plan covers, from 第十五个五年规划 or “十五五” in its title."""
    match = _ORDINAL_PLAN.search(title)
    if match:
        number = chinese_number(match["n"])
    else:
        short = _SHORT_PLAN.search(title)
        if short is None:
            return None
        number = 10 + chinese_number(short["n"])
    if number < 3:
        return None
    # The 3rd plan began in 1966 after the 1963–65 adjustment years; every plan since is 5 years.
    start = 1966 + (number - 3) * 5
    return start, start + 4


def looks_like_five_year_plan(title: str) -> bool:
    """True for a five-year plan (or its proposal) by its title."""
    return "五年规划" in title or (_SHORT_PLAN.search(title) is not None and "规划" in title)


@dataclass
class _Goal:
    number: str
    section: str | None
    line: int
    lines: list[int] = field(default_factory=list)
    original: list[str] = field(default_factory=list)


def _collect_goals(source: SourceText) -> list[_Goal]:
    goals: list[_Goal] = []
    current: _Goal | None = None
    section: str | None = None
    for index, simplified in enumerate(source.simplified):
        text = simplified.strip()
        if not text:
            continue
        line = index + 1
        if PART_HEADING.match(text) and len(text) <= 80:
            section, current = text, None
            continue
        numbered = NUMBERED_ITEM.match(text)
        if numbered:
            current = _Goal(fold_width(numbered["number"]), section, line)
            goals.append(current)
            current.lines.append(line)
            current.original.append(source.original[index].strip()[numbered.end() :])
        elif current is not None:
            current.lines.append(line)
            current.original.append(source.original[index].strip())
    return goals


def count_plan_goals(source: SourceText) -> int:
    """How many numbered goals the text holds."""
    return len(_collect_goals(source))


def parse_plan(
    source: SourceText, context: ImportContext, period: tuple[int, int] | None
) -> list[PlanGoal]:
    """Read every numbered goal of the plan."""
    result: list[PlanGoal] = []
    used: set[str] = set()
    for goal in _collect_goals(source):
        for line in goal.lines:
            context.check_line_quality(line, source.original[line - 1])
        original = "\n".join(goal.original)
        text = to_simplified(original)
        title = _TITLE.match(text)
        code = goal_code(context.document_code, goal.number)
        if code in used:
            context.warn(goal.line, f"目标编号{goal.number}重复 / goal number repeats")
            code = f"{code}-{goal.line}"
        used.add(code)
        result.append(
            PlanGoal(
                code=code,
                section=goal.section,
                item=goal.number,
                text=text,
                text_original=original,
                line=goal.line,
                title=title["title"] if title else "",
                start_year=period[0] if period else None,
                end_year=period[1] if period else None,
            )
        )
    return result
