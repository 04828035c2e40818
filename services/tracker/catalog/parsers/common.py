"""What every format parser shares: the source lines, the import context and its warnings."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.tracker.catalog.codes import item_key, task_code
from services.tracker.catalog.deadlines import (
    find_deadline_in_text,
    parse_deadline_with_milestones,
    unreadable_parts,
)
from services.tracker.catalog.model import NO_DEADLINE, Deadline, Milestone
from services.tracker.catalog.model import Warning as ParseWarning
from services.tracker.catalog.text import has_markup, looks_garbled, looks_truncated, to_simplified
from services.tracker.catalog.units import UnitRegistry

# Headings shared by the formats: 一、… (part) and （一）… (section).
PART_HEADING = re.compile(r"^\s*[一二三四五六七八九十]+、")
SECTION_HEADING = re.compile(r"^\s*[（(][一二三四五六七八九十]+[）)]")
NUMBERED_ITEM = re.compile(r"^\s*(?P<number>\d{1,3})\s*[.．。、](?!\d)\s*")


@dataclass(frozen=True)
class SourceText:
    """The document's lines as written and in simplified characters, index-aligned."""

    original: tuple[str, ...]
    simplified: tuple[str, ...]

    @classmethod
    def from_text(cls, text: str) -> SourceText:
        """Split text into lines (any line ending) and simplify each line."""
        lines = tuple(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
        return cls(original=lines, simplified=tuple(to_simplified(line) for line in lines))

    def __len__(self) -> int:
        return len(self.original)


def original_slice(original: str, simplified: str, start: int, end: int) -> str:
    """The original text under a span of the simplified text (same offsets when aligned)."""
    if len(original) == len(simplified):
        return original[start:end]
    return simplified[start:end]


@dataclass
class ImportContext:
    """Per-import state a parser needs: year, document code, unit registry, warnings."""

    year: int
    document_code: str
    registry: UnitRegistry
    warnings: list[ParseWarning] = field(default_factory=list)
    origins: Sequence[str | None] = ()  # where each text line came from (worksheet rows)
    _quality_checked: set[int] = field(default_factory=set)

    def warn(self, line: int | None, message: str) -> None:
        """Record something the importer could not read, naming its sheet row if known.

        A worksheet row replaces the line number: the text's lines are the reader's
        rendering of the sheet, which the operator never sees.
        """
        if line is not None and 0 < line <= len(self.origins):
            origin = self.origins[line - 1]
            if origin:
                line, message = None, f"{origin}：{message}"
        warning = ParseWarning(line=line, message=message)
        if warning not in self.warnings:
            self.warnings.append(warning)

    def check_line_quality(self, line: int, text: str) -> None:
        """Warn once per line about mojibake, truncation or web markup kept in the text."""
        if line in self._quality_checked:
            return
        self._quality_checked.add(line)
        if looks_truncated(text):
            self.warn(line, "文本被截断（以乱码结尾），原文保留 / text cut off mid-character; kept")
        elif looks_garbled(text):
            self.warn(
                line, "文本含有乱码（编码错误），原文保留 / text contains mojibake; kept as is"
            )
        if has_markup(text):
            self.warn(line, "文本含有网页标记残留，原文保留 / leftover HTML markup; kept as is")

    def read_deadline(
        self, phrase: str, *, line: int, task_text: str = ""
    ) -> tuple[Deadline, list[Milestone]]:
        """Read a deadline phrase (or find one in the task text) and warn about what is unread."""
        phrase = phrase.strip()
        if not phrase:
            found = find_deadline_in_text(task_text, year=self.year) if task_text else None
            if found is not None:
                return found, []
            self.warn(line, "未找到完成时限 / no deadline stated")
            return NO_DEADLINE, []
        deadline, milestones = parse_deadline_with_milestones(phrase, year=self.year)
        for part in unreadable_parts(deadline, milestones):
            self.warn(
                line,
                f"完成时限无法识别，已原样保留、不设日期：“{part}” / "
                "deadline phrase not understood; kept verbatim without a date",
            )
        return deadline, milestones

    def unique_code(self, item: str, clause: int, used: set[str], *, line: int) -> str:
        """The task code for an item and clause, made unique if the document repeats an item."""
        code = task_code(self.document_code, item, clause)
        if code in used:
            suffix = 2
            while f"{code}-{suffix}" in used:
                suffix += 1
            self.warn(
                line,
                f"序号{item}重复，任务编码加后缀-{suffix} / item {item} repeats; code suffixed",
            )
            code = f"{code}-{suffix}"
        used.add(code)
        return code


def section_items_repeat(numbers: list[tuple[int, str]]) -> bool:
    """True when item numbers restart per section, so they must be qualified to stay unique."""
    seen = [number for _, number in numbers]
    return len(set(seen)) < len(seen)


def qualified_item(section_index: int, number: str, *, qualify: bool) -> str:
    """The item key: the number itself, or `<section>.<number>` when numbers restart."""
    return f"{section_index}.{item_key(number)}" if qualify else number
