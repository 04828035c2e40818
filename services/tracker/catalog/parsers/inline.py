"""Inline responsibility clauses: numbered items whose sentence groups each end in a clause.

`7.积极统筹…密切跟踪政策执行情况。(市财政局牵头,市发展改革委、…等按职责分工负责,12月底前完成)`
Every clause closes one task, so one item can give several. Brackets that are not
clauses (`6亩以下(不含6亩)`, `(LPR)`) stay in the task text. Also read: `X牵头,Y配合`,
`X、Y分别牵头`, and items followed by `牵头单位：` / `责任单位：` / `完成时限：` /
`分管领导：` lines instead of a clause. Web text around the document is ignored because
only numbered items (and paragraphs carrying a clause) are read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from services.tracker.catalog.model import ParsedTask
from services.tracker.catalog.parsers.common import (
    NUMBERED_ITEM,
    PART_HEADING,
    SECTION_HEADING,
    ImportContext,
    SourceText,
    original_slice,
    qualified_item,
    section_items_repeat,
)
from services.tracker.catalog.targets import extract_targets
from services.tracker.catalog.text import fold_width, split_outside_brackets
from services.tracker.catalog.units import (
    UnitRegistry,
    is_plausible_unit,
    looks_like_organ,
    split_units,
)

# A bracket group, allowing one level of nested brackets (市外办（市港澳办）牵头,…).
CLAUSE_GROUP = re.compile(r"[（(]((?:[^（）()]|[（(][^（）()]*[）)])*)[）)]")
_ROLE = re.compile(
    r"^(?P<units>.+?)(?P<etc>等(?:单位|部门)?)?(?P<how>按职责分工|按职责|分别|共同)?"
    r"(?P<verb>牵头负责|牵头|负责|配合|参与|协助|协办)$"
)
_LABELLED_UNITS = re.compile(
    r"^(?P<label>牵头单位|牵头部门|责任单位|责任部门|配合单位|协办单位)[:：](?P<units>.+)$"
)
_LINE_LABEL = re.compile(
    r"(?P<label>牵头单位|牵头部门|责任单位|责任部门|配合单位|协办单位|配合部门|完成时限|完成时间|"
    r"时间节点|时限要求|分管市领导|分管领导|责任领导|牵头领导)\s*[:：]"
)
_PART_SEPARATORS = "，,；;"
_EDGE = " \t，,；;。、"
_LEAD_LABELS = ("牵头单位", "牵头部门")
_CO_LABELS = ("配合单位", "协办单位", "配合部门")
_UNIT_LABELS = ("责任单位", "责任部门")
_DEADLINE_LABELS = ("完成时限", "完成时间", "时间节点", "时限要求")
_LEADER_LABELS = ("分管市领导", "分管领导", "责任领导", "牵头领导")
_LEADER_SPLIT = re.compile(r"[、，,；;/\s]+")
_HEADING_MAX = 60
_LABEL_VALUE_MAX = 20
_SENTENCE_END = re.compile(r"[。；;！!？?]")


@dataclass(frozen=True)
class Clause:
    """A responsibility clause: who leads, who helps, and by when."""

    lead_units: tuple[str, ...]
    co_units: tuple[str, ...]
    deadline_text: str
    more_units: bool


def _split_top_level(text: str) -> list[str]:
    """Split on commas and semicolons that are not inside nested brackets."""
    parts = split_outside_brackets(text, _PART_SEPARATORS)
    return [part.strip() for part in parts if part.strip()]


def _units_if_plausible(text: str, registry: UnitRegistry) -> list[str] | None:
    units = split_units(text, registry)
    if not units or not all(is_plausible_unit(unit) for unit in units):
        return None
    if not any(looks_like_organ(unit) for unit in units):
        return None
    return units


def read_clause(inner: str, registry: UnitRegistry) -> Clause | None:
    """Read the inside of a bracket as a responsibility clause, or None if it is not one."""
    leads: list[str] = []
    responsible: list[str] = []
    helpers: list[str] = []
    deadline_parts: list[str] = []
    more_units = False
    for part in _split_top_level(inner):
        role = _ROLE.match(part)
        labelled = _LABELLED_UNITS.match(part)
        if role and (units := _units_if_plausible(role["units"], registry)) is not None:
            more_units = more_units or bool(role["etc"])
            verb = role["verb"]
            if verb.startswith("牵头"):
                leads += units
            elif verb == "负责":
                responsible += units
            else:
                helpers += units
        elif labelled and (units := _units_if_plausible(labelled["units"], registry)) is not None:
            label = labelled["label"]
            if label in _LEAD_LABELS:
                leads += units
            elif label in _UNIT_LABELS:
                responsible += units
            else:
                helpers += units
        else:
            deadline_parts.append(part)
    if not (leads or responsible or helpers):
        return None
    lead_units, co_units = assign_roles(leads, responsible, helpers)
    separator = "，" if "，" in inner else ","
    return Clause(
        lead_units=tuple(lead_units),
        co_units=tuple(co_units),
        deadline_text=separator.join(deadline_parts),
        more_units=more_units,
    )


def assign_roles(
    leads: list[str], responsible: list[str], helpers: list[str]
) -> tuple[list[str], list[str]]:
    """Lead and co-units: named 牵头 units lead; without any, every responsible unit leads."""
    if leads:
        lead_units = _unique(leads)
        co_units = [unit for unit in _unique(responsible + helpers) if unit not in lead_units]
    else:
        # X、Y等按职责分工负责: each named unit answers for its own part (docs/domain.md §1).
        lead_units = _unique(responsible)
        co_units = [unit for unit in _unique(helpers) if unit not in lead_units]
    return lead_units, co_units


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def count_clauses(source: SourceText, registry: UnitRegistry) -> int:
    """How many responsibility clauses the text holds (used to recognise the format)."""
    return sum(
        1
        for line in source.simplified
        for match in CLAUSE_GROUP.finditer(line)
        if read_clause(match.group(1), registry) is not None
    )


def has_label_lines(source: SourceText) -> bool:
    """True when items carry their units on `牵头单位：`/`责任单位：` lines."""
    return any(
        (match := _LINE_LABEL.match(line.strip())) is not None
        and match["label"] in _LEAD_LABELS + _UNIT_LABELS
        for line in source.simplified
    )


@dataclass
class _Item:
    """A numbered item being collected: its text across lines, and any label lines."""

    number: str
    section: str | None
    section_index: int
    line: int
    simplified: str = ""
    original: str = ""
    offsets: list[tuple[int, int]] = field(default_factory=list)  # (text offset, line)
    labels: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    last_label: str | None = None  # a label whose values may continue on the next lines

    def append(self, simplified: str, original: str, line: int) -> None:
        self.offsets.append((len(self.simplified), line))
        self.simplified += simplified
        self.original += original if len(original) == len(simplified) else simplified

    def line_at(self, offset: int) -> int:
        line = self.line
        for start, number in self.offsets:
            if start > offset:
                break
            line = number
        return line


def _is_heading(text: str, pattern: re.Pattern[str]) -> bool:
    # A heading is short and is not a sentence: （一）加强组织协调。各单位要… is a paragraph.
    return bool(pattern.match(text)) and len(text) <= _HEADING_MAX and "。" not in text


def _add_labels(item: _Item, text: str, line: int) -> bool:
    """Attach `牵头单位：…` style labels on this line to the item; True if the line had any."""
    matches = list(_LINE_LABEL.finditer(text))
    if not matches or matches[0].start() != 0:
        return False
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        value = text[match.end() : end].strip(_EDGE)
        item.labels.setdefault(match["label"], []).append((value, line))
    item.last_label = matches[-1]["label"]
    return True


def _continue_label(item: _Item, text: str, line: int) -> bool:
    """A short line after a label line is one more value of it (one leader or unit per line)."""
    if item.last_label is None or len(text) > _LABEL_VALUE_MAX or _SENTENCE_END.search(text):
        item.last_label = None
        return False
    item.labels[item.last_label].append((text.strip(_EDGE), line))
    return True


def _collect_items(source: SourceText, registry: UnitRegistry) -> list[_Item]:
    items: list[_Item] = []
    current: _Item | None = None
    section: str | None = None
    section_index = 0
    anonymous = 0
    for index, simplified in enumerate(source.simplified):
        line = index + 1
        text = simplified.strip()
        original = source.original[index].strip()
        if not text:
            continue
        if _is_heading(text, PART_HEADING) or _is_heading(text, SECTION_HEADING):
            section = text
            section_index += 1
            current = None
            continue
        numbered = NUMBERED_ITEM.match(text)
        if numbered:
            current = _Item(fold_width(numbered["number"]), section, section_index, line)
            items.append(current)
            start = numbered.end()
            current.append(
                text[start:], original[start:] if len(original) == len(text) else "", line
            )
            continue
        if current is not None and (
            _add_labels(current, text, line) or _continue_label(current, text, line)
        ):
            continue
        if current is not None:
            current.append(text, original, line)
        elif any(read_clause(m.group(1), registry) for m in CLAUSE_GROUP.finditer(text)):
            # A clause outside any numbered item: the paragraph is an item of its own.
            anonymous += 1
            current = _Item(f"P{anonymous}", section, section_index, line)
            items.append(current)
            current.append(text, original, line)
    return items


class _ItemReader:
    """Turns collected items into tasks, one per clause."""

    def __init__(self, context: ImportContext, qualify: bool) -> None:
        self.context = context
        self.qualify = qualify
        self.used_codes: set[str] = set()

    def read(self, item: _Item) -> list[ParsedTask]:
        key = (
            item.number
            if item.number.startswith("P")
            else qualified_item(item.section_index, item.number, qualify=self.qualify)
        )
        tasks: list[ParsedTask] = []
        position = 0
        leaders = self._label_leaders(item)
        for match in CLAUSE_GROUP.finditer(item.simplified):
            clause = read_clause(match.group(1), self.context.registry)
            if clause is None:
                continue
            body_start = self._skip_edge(item.simplified, position, match.start())
            line = item.line_at(body_start)
            position = match.end()
            if body_start >= match.start():
                self.context.warn(
                    line,
                    f"第{item.number}项的责任分工括注前没有任务内容 / "
                    f"a responsibility clause in item {item.number} follows no task text",
                )
                continue
            tasks.append(
                self._task(item, key, len(tasks) + 1, body_start, match.start(), clause, leaders)
            )
        rest_start = self._skip_edge(item.simplified, position, len(item.simplified))
        if tasks and rest_start < len(item.simplified):
            self.context.warn(
                item.line_at(rest_start),
                f"第{item.number}项末尾的文字没有责任分工，未生成任务："
                f"“{item.simplified[rest_start : rest_start + 30]}” / "
                f"text at the end of item {item.number} has no responsibility clause",
            )
        if not tasks:
            labelled = self._labelled_task(item, key, leaders)
            if labelled is not None:
                tasks.append(labelled)
            else:
                self.context.warn(
                    item.line,
                    f"第{item.number}项没有责任分工，未生成任务 / "
                    f"item {item.number} has no responsibility clause; no task made",
                )
        return tasks

    @staticmethod
    def _skip_edge(text: str, start: int, end: int) -> int:
        while start < end and text[start] in _EDGE:
            start += 1
        return start

    def _task(
        self,
        item: _Item,
        key: str,
        clause_number: int,
        start: int,
        end: int,
        clause: Clause,
        leaders: list[str],
    ) -> ParsedTask:
        text = item.simplified[start:end].strip()
        line = item.line_at(start)
        clause_line = item.line_at(end)
        deadline, milestones = self.context.read_deadline(
            clause.deadline_text, line=clause_line, task_text=text
        )
        if not clause.lead_units:
            self.context.warn(
                clause_line, f"第{item.number}项的分工没有牵头单位 / clause names no lead unit"
            )
        return ParsedTask(
            code=self.context.unique_code(key, clause_number, self.used_codes, line=line),
            section=item.section,
            item=item.number,
            text=text,
            text_original=original_slice(item.original, item.simplified, start, end).strip(),
            lead_units=clause.lead_units,
            co_units=clause.co_units,
            leaders=tuple(leaders),
            deadline=deadline,
            milestones=tuple(milestones),
            targets=tuple(extract_targets(text)),
            line=line,
            more_units=clause.more_units,
        )

    def _label_values(self, item: _Item, labels: tuple[str, ...]) -> list[tuple[str, int]]:
        return [value for label in labels for value in item.labels.get(label, [])]

    def _label_leaders(self, item: _Item) -> list[str]:
        names: list[str] = []
        for value, _ in self._label_values(item, _LEADER_LABELS):
            names += [name for name in _LEADER_SPLIT.split(value) if name and name not in names]
        return names

    def _labelled_task(self, item: _Item, key: str, leaders: list[str]) -> ParsedTask | None:
        registry = self.context.registry

        def units(labels: tuple[str, ...]) -> list[str]:
            return split_units([value for value, _ in self._label_values(item, labels)], registry)

        leads, responsible, helpers = units(_LEAD_LABELS), units(_UNIT_LABELS), units(_CO_LABELS)
        if not (leads or responsible or helpers):
            return None
        lead_units, co_units = assign_roles(leads, responsible, helpers)
        text = item.simplified.lstrip(_EDGE).rstrip()
        deadline_values = self._label_values(item, _DEADLINE_LABELS)
        deadline_line = deadline_values[0][1] if deadline_values else item.line
        deadline, milestones = self.context.read_deadline(
            "，".join(value for value, _ in deadline_values), line=deadline_line, task_text=text
        )
        if not lead_units:
            self.context.warn(item.line, f"第{item.number}项没有牵头单位 / item names no lead unit")
        return ParsedTask(
            code=self.context.unique_code(key, 1, self.used_codes, line=item.line),
            section=item.section,
            item=item.number,
            text=text,
            text_original=item.original.lstrip(_EDGE).rstrip(),
            lead_units=tuple(lead_units),
            co_units=tuple(co_units),
            leaders=tuple(leaders),
            deadline=deadline,
            milestones=tuple(milestones),
            targets=tuple(extract_targets(text)),
            line=item.line,
        )


def parse_inline(source: SourceText, context: ImportContext) -> list[ParsedTask]:
    """Read every numbered item's responsibility clauses (or label lines) into tasks."""
    items = _collect_items(source, context.registry)
    for item in items:
        for _, line in item.offsets:
            context.check_line_quality(line, source.original[line - 1])
    numbered = [
        (item.section_index, item.number) for item in items if not item.number.startswith("P")
    ]
    reader = _ItemReader(context, qualify=section_items_repeat(numbered))
    tasks: list[ParsedTask] = []
    for item in items:
        tasks.extend(reader.read(item))
    return tasks
