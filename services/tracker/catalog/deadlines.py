"""Reading deadline phrases (完成时限) into a kind, a Shanghai due date and a cadence.

`parse_deadline_with_milestones(text, year=Y)` is the full reading: it returns the task's
deadline and the milestones named in the phrase (`其中A1月底前建成通车；B年底前建成通车`,
or `4月底前出台相关政策,年内持续推进`). `parse_deadline` keeps only the deadline.
A phrase that cannot be read comes back verbatim with kind "unknown" and no date; the
callers turn that into a warning (see `unreadable_parts`). Nothing is guessed: `6月前`
(before June starts, or by its end?) and `主汛期` stay unread.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from services.tracker.catalog.model import Deadline, Milestone
from services.tracker.catalog.text import fold_width, to_simplified
from shared.vocabulary import Cadence, DeadlineKind
from shared.workcal import WorkCalendar, standard_calendar

SHANGHAI = ZoneInfo("Asia/Shanghai")

_CN_DIGITS = {
    "〇": 0, "零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4,
    "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip


def chinese_number(text: str) -> int:
    """Read 1–99 written in digits or Chinese numerals (十二, 二十一, 〇)."""
    if text.isdigit():
        return int(text)
    if "十" not in text:
        value = 0
        for char in text:
            value = value * 10 + _CN_DIGITS[char]
        return value
    tens_text, _, units_text = text.partition("十")
    tens = _CN_DIGITS[tens_text] if tens_text else 1
    units = _CN_DIGITS[units_text] if units_text else 0
    return tens * 10 + units


def chinese_year(text: str) -> int:
    """Read a year written as digits or digit by digit in Chinese (二〇二五)."""
    if text.isdigit():
        return int(text)
    return int("".join(str(_CN_DIGITS[char]) for char in text))


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


_MONTH = r"1[0-2]|0?[1-9]|十[一二]?|[一二三四五六七八九]"
_DAY = r"[12]\d|3[01]|0?[1-9]|[一二]?十[一二三四五六七八九]?|三十一?|[一二三四五六七八九]"
_NOT_AFTER_NUMBER = r"(?<![\d一二三四五六七八九十两〇零])"

# One alternation, most specific first, scanned without overlaps: at a given position the
# first alternative that matches wins, so 2022年6月30日 is never read as a bare 6月.
_DATE = re.compile(
    rf"(?P<ymd_y>\d{{4}})年(?P<ymd_m>{_MONTH})月(?P<ymd_d>{_DAY})日"
    rf"|(?P<ym_y>\d{{4}})年(?P<ym_m>{_MONTH})月(?P<ym_part>底|末|份|内|上旬|中旬|下旬)?"
    rf"|(?P<ye_y>\d{{4}})年(?:底|末|内)"
    rf"|{_NOT_AFTER_NUMBER}(?P<md_m>{_MONTH})月(?P<md_d>{_DAY})日"
    rf"|{_NOT_AFTER_NUMBER}(?P<m_m>{_MONTH})月(?P<m_part>底|末|份|内|上旬|中旬|下旬)?"
    r"|(?P<quarter>(?:第|前)?[一二三四1-4])季度"
    r"|(?P<half>上半年|下半年)"
    rf"|(?P<year_end>{_NOT_AFTER_NUMBER}年(?:底|末|内)|全年|今年|本年度?|年度内)"
)

_EVENT = re.compile(
    rf"(?P<y>\d{{4}}|[〇零一二三四五六七八九]{{4}})年(?P<m>{_MONTH})月(?P<d>{_DAY})日"
    r"(?P<hour>零时|零点|(?P<h>\d{1,2})[时点])?"
)
_NO_END = re.compile(r"长期坚持|长期推进|长期开展|长期执行|常态化(?:推进|开展)?")
# Stated cadences, most specific first (每两个月 before 每月, 每半年 before 每年).
_CADENCES = (
    (Cadence.WEEKLY, re.compile(r"逐周|按周|每周|每星期")),
    (Cadence.BI_MONTHLY, re.compile(r"每两个月|每2个月|每双月|双月")),
    (Cadence.MONTHLY, re.compile(r"逐月|按月|每月")),
    (Cadence.QUARTERLY, re.compile(r"逐季|按季|每季")),
    (Cadence.HALF_YEARLY, re.compile(r"每半年|半年一报|按半年")),
    (Cadence.YEARLY, re.compile(r"每年|按年|逐年")),
)
_MONTHLY_DUE_DAY = re.compile(rf"(?:每月|逐月|按月)(?P<day>{_DAY})日前")
_WORKING_DAYS = re.compile(r"(?P<n>\d{1,3}|[一二三四五六七八九十]{1,3})个工作日(?:内|之内|以内)")
_YEAR_LONG = re.compile(r"(?:年内|全年)?持续(?:推进|开展|实施|抓好)|年内持续|全年持续")
_WITHIN_YEAR = re.compile(r"年内|全年|本年")
_PROGRESS = re.compile(
    r"取得(?:明显|积极|重要|重大|阶段性|实质性|显著|突破性|新的?)?(?:进展|成效|突破)"
)
_PIECE_BREAK = re.compile(r"[。；;]")
_COMMA = re.compile(r"[，,]")
_EDGE_PUNCTUATION = " \t\n，,。；;、：:"
_GOVERNING_KINDS = (DeadlineKind.CONTINUOUS, DeadlineKind.PROGRESS, DeadlineKind.EVENT)


def _normalise(text: str) -> str:
    return to_simplified(fold_width(text))


def _quarter_end(year: int, label: str) -> date:
    quarter = chinese_number(label.lstrip("第前"))
    return _month_end(year, quarter * 3)


def _date_from_match(match: re.Match[str], text: str, year: int) -> date | None:
    """The date one `_DATE` match stands for, or None when it is ambiguous (`6月前`)."""
    groups = match.groupdict()
    if groups["ymd_y"]:
        return date(
            int(groups["ymd_y"]),
            chinese_number(groups["ymd_m"]),
            chinese_number(groups["ymd_d"]),
        )
    if groups["ym_y"]:
        return _month_date(int(groups["ym_y"]), groups["ym_m"], groups["ym_part"], text, match)
    if groups["ye_y"]:
        return date(int(groups["ye_y"]), 12, 31)
    if groups["md_m"]:
        return date(year, chinese_number(groups["md_m"]), chinese_number(groups["md_d"]))
    if groups["m_m"]:
        return _month_date(year, groups["m_m"], groups["m_part"], text, match)
    if groups["quarter"]:
        return _quarter_end(year, groups["quarter"])
    if groups["half"]:
        return date(year, 6, 30) if groups["half"] == "上半年" else date(year, 12, 31)
    if groups["year_end"]:
        return date(year, 12, 31)
    return None


def _month_date(
    year: int, month_text: str, part: str | None, text: str, match: re.Match[str]
) -> date | None:
    month = chinese_number(month_text)
    if part == "上旬":
        return date(year, month, 10)
    if part == "中旬":
        return date(year, month, 20)
    if part is None and text[match.end() : match.end() + 1] == "前":
        # 6月前: by the start of June or by its end? Readings differ; do not guess.
        return None
    return _month_end(year, month)


def _find_due(text: str, year: int) -> date | None:
    dates = [
        day
        for match in _DATE.finditer(text)
        if (day := _date_from_match(match, text, year)) is not None
    ]
    return max(dates) if dates else None


def _read_event(original: str, text: str) -> Deadline | None:
    match = _EVENT.search(text)
    if match is None or not ("时点" in text or match.group("hour")):
        return None
    hour = int(match.group("h")) if match.group("h") else 0
    instant = datetime(
        chinese_year(match.group("y")),
        chinese_number(match.group("m")),
        chinese_number(match.group("d")),
        hour,
        tzinfo=SHANGHAI,
    )
    return Deadline(text=original, kind=DeadlineKind.EVENT, due=instant.date(), at=instant)


def _stated_cadence(text: str) -> Cadence | None:
    for cadence, pattern in _CADENCES:
        if pattern.search(text):
            return cadence
    return None


def _cadence(text: str) -> Cadence:
    # Continuous tasks report monthly unless the document says otherwise (docs/domain.md §4).
    return _stated_cadence(text) or Cadence.MONTHLY


def _due_day(text: str) -> int | None:
    match = _MONTHLY_DUE_DAY.search(text)
    return chinese_number(match["day"]) if match else None


def _read_continuous(original: str, text: str, year: int) -> Deadline | None:
    due_day = _due_day(text)
    if _NO_END.search(text):
        return Deadline(
            text=original,
            kind=DeadlineKind.CONTINUOUS,
            cadence=_cadence(text),
            report_due_day=due_day,
        )
    if _stated_cadence(text) is not None:
        summary = date(year, 12, 31) if _WITHIN_YEAR.search(text) else None
        return Deadline(
            text=original,
            kind=DeadlineKind.CONTINUOUS,
            cadence=_cadence(text),
            summary_due=summary,
            report_due_day=due_day,
        )
    if _YEAR_LONG.search(text):
        return Deadline(
            text=original,
            kind=DeadlineKind.CONTINUOUS,
            cadence=_cadence(text),
            summary_due=date(year, 12, 31),
            report_due_day=due_day,
        )
    return None


def _read_working_days(
    original: str, text: str, year: int, calendar: WorkCalendar
) -> Deadline | None:
    """`N个工作日内`: N working days after the date the phrase counts from (`3月1日起…`),
    else after the document's year begins (the task's start); that day itself is day 0."""
    match = _WORKING_DAYS.search(text)
    if match is None:
        return None
    count = chinese_number(match["n"])
    anchor = _find_due(text[: match.start()], year) or date(year, 1, 1)
    due = calendar.add_working_days(anchor, count)
    return Deadline(text=original, kind=DeadlineKind.COMPLETE, due=due, working_days=count)


def parse_single_phrase(text: str, *, year: int, calendar: WorkCalendar | None = None) -> Deadline:
    """Read one deadline phrase with no milestones; unknown (verbatim, no date) if unreadable.

    `calendar` counts `N个工作日内` (default: the package's working calendar).
    """
    normalised = _normalise(text)
    event = _read_event(text, normalised)
    if event is not None:
        return event
    continuous = _read_continuous(text, normalised, year)
    if continuous is not None:
        return continuous
    working = _read_working_days(text, normalised, year, calendar or standard_calendar())
    if working is not None:
        return working
    due = _find_due(normalised, year)
    if _PROGRESS.search(normalised):
        return Deadline(text=text, kind=DeadlineKind.PROGRESS, due=due)
    if due is not None:
        return Deadline(text=text, kind=DeadlineKind.COMPLETE, due=due)
    return Deadline(text=text, kind=DeadlineKind.UNKNOWN)


def _strip_edges(text: str) -> str:
    return text.strip(_EDGE_PUNCTUATION)


def _pieces(text: str, *, year: int) -> list[str]:
    """Split a phrase into parts that each carry their own deadline.

    Sentences (。；) always split. Commas split only when every comma part reads as a
    deadline by itself (`4月底前出台相关政策,年内持续推进`); otherwise the comma joins a
    subject to its date (`新打造100个智能工厂和数字化车间，年底前完成`) and stays.
    """
    pieces: list[str] = []
    for sentence in _PIECE_BREAK.split(text):
        sentence = _strip_edges(sentence)
        if not sentence:
            continue
        parts = [_strip_edges(part) for part in _COMMA.split(sentence)]
        parts = [part for part in parts if part]
        if len(parts) > 1 and all(
            parse_single_phrase(part, year=year).kind is not DeadlineKind.UNKNOWN for part in parts
        ):
            pieces.extend(parts)
        else:
            pieces.append(sentence)
    return pieces


def _combine(text: str, readings: list[tuple[str, Deadline]]) -> tuple[Deadline, list[Milestone]]:
    """The task deadline for several parts.

    A continuous, progress or event part governs and further continuous parts refine it
    (`逐月调度，年内持续推进`); dated parts become milestones. When every part is a
    completion, the task completes when the last of them does.
    """
    governing = next(
        (index for index, (_, r) in enumerate(readings) if r.kind in _GOVERNING_KINDS), None
    )
    if governing is not None:
        deadline = replace(readings[governing][1], text=text)
        milestones: list[Milestone] = []
        for index, (piece, reading) in enumerate(readings):
            if index == governing:
                continue
            if reading.kind is DeadlineKind.CONTINUOUS and deadline.kind is DeadlineKind.CONTINUOUS:
                deadline = _merge_continuous(deadline, reading)
            else:
                milestones.append(Milestone(text=piece, due=reading.due))
        return deadline, milestones
    dues = [reading.due for _, reading in readings if reading.due is not None]
    deadline = (
        Deadline(text=text, kind=DeadlineKind.COMPLETE, due=max(dues))
        if dues
        else Deadline(text=text, kind=DeadlineKind.UNKNOWN)
    )
    return deadline, [Milestone(text=piece, due=reading.due) for piece, reading in readings]


def _merge_continuous(deadline: Deadline, other: Deadline) -> Deadline:
    # A stated cadence beats the monthly default; a year-end summary from either part holds.
    cadence = deadline.cadence if deadline.cadence is not Cadence.MONTHLY else other.cadence
    return replace(
        deadline,
        cadence=cadence,
        summary_due=deadline.summary_due or other.summary_due,
        report_due_day=deadline.report_due_day or other.report_due_day,
    )


def parse_deadline_with_milestones(text: str, *, year: int) -> tuple[Deadline, list[Milestone]]:
    """Read a deadline phrase for a document of `year`: the task deadline and its milestones.

    `年底前取得明显进展。其中A1月底前建成通车；B年底前建成通车` gives a progress deadline
    due Y-12-31 and milestones A (Y-01-31) and B (Y-12-31). A milestone whose date cannot
    be read has `due` None.
    """
    stripped = text.strip()
    if not stripped:
        return Deadline(text=stripped, kind=DeadlineKind.UNKNOWN), []
    head, found, tail = stripped.partition("其中")
    if not found:
        pieces = _pieces(stripped, year=year)
        if len(pieces) <= 1:
            return parse_single_phrase(stripped, year=year), []
        return _combine(stripped, [(p, parse_single_phrase(p, year=year)) for p in pieces])

    milestones = [
        Milestone(text=piece, due=parse_single_phrase(piece, year=year).due)
        for piece in (_strip_edges(part) for part in _PIECE_BREAK.split(tail))
        if piece
    ]
    head = _strip_edges(head)
    if head:
        deadline, head_milestones = parse_deadline_with_milestones(head, year=year)
        return replace(deadline, text=stripped), head_milestones + milestones
    dues = [m.due for m in milestones if m.due is not None]
    if dues and len(dues) == len(milestones):
        return Deadline(text=stripped, kind=DeadlineKind.COMPLETE, due=max(dues)), milestones
    return Deadline(text=stripped, kind=DeadlineKind.UNKNOWN), milestones


def parse_deadline(text: str, *, year: int) -> Deadline:
    """Read a deadline phrase for a document of `year`, ignoring any milestones it names."""
    return parse_deadline_with_milestones(text, year=year)[0]


def unreadable_parts(deadline: Deadline, milestones: list[Milestone]) -> list[str]:
    """The parts of a reading that stayed unread: what a warning should quote."""
    parts = [m.text for m in milestones if m.due is None]
    if not deadline.readable and not parts:
        parts.append(deadline.text)
    return parts


_IN_TEXT = re.compile(
    rf"{_NOT_AFTER_NUMBER}(?:{_MONTH})月(?:(?:{_DAY})日|底|末)前[^，,。；;（(]*"
    r"|年底前[^，,。；;（(]*"
    r"|(?:上半年|[一二三四]季度末?)前?完成"
)


def find_deadline_in_text(text: str, *, year: int) -> Deadline | None:
    """A deadline stated inside task text (`…6月底前出台实施方案`), or None.

    Only explicit "by" phrases count here: a verb like 持续推进 in running text is not a
    deadline, so it is not read as one.
    """
    match = _IN_TEXT.search(_normalise(text))
    if match is None:
        return None
    phrase = match.group(0)
    reading = parse_single_phrase(phrase, year=year)
    return reading if reading.readable else None
