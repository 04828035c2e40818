"""Chinese messages from Jinja2 templates: subject, plain text, markdown and HTML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.notifier.escalation.engine import Digest, PlannedNotification, TaskCondition
from services.notifier.escalation.policy import RecipientRole
from shared.vocabulary import Light

TEMPLATES = Path(__file__).with_name("templates")

# Full-width look-alikes: task text stays readable but cannot become markdown syntax
# (a stray `[`, `*` or `<` in a document title must not turn into a link or markup).
_MARKDOWN_NEUTRAL = str.maketrans(
    {
        "\\": "＼",
        "*": "＊",
        "_": "＿",
        "`": "｀",
        "[": "［",
        "]": "］",
        "<": "＜",
        ">": "＞",
        "#": "＃",
        "|": "｜",
        "~": "～",
    }
)


@dataclass(frozen=True)
class RenderedMessage:
    """One digest rendered for every kind of channel."""

    subject_zh: str
    text: str
    markdown: str
    html: str


@dataclass(frozen=True)
class TaskLine:
    """What the templates show for one task in a digest."""

    index: int
    task_id: str
    title: str
    level: int
    level_name: str
    sequence: int
    light: str
    light_zh: str
    situation: str
    days_overdue: int
    lead_units: str
    co_units: str
    leaders: str
    reasons: str
    due_date: str
    action: str
    respond_by: str


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


class _TrustedMarkdown(str):
    """Configuration text (the system URL) that must reach markdown unaltered."""

    __slots__ = ()


def _markdown_safe(value: object) -> str:
    if isinstance(value, _TrustedMarkdown):
        return str(value)
    return _one_line(value).translate(_MARKDOWN_NEUTRAL)


def format_date_zh(day: date | datetime | None, *, with_year: bool = False) -> str:
    """A date the way Chinese official text writes it: 11月25日 or 2022年6月30日."""
    if day is None:
        return ""
    if isinstance(day, datetime):
        day = day.date()
    text = f"{day.month}月{day.day}日"
    return f"{day.year}年{text}" if with_year else text


def _situation(task: TaskCondition, window: datetime) -> str:
    zone = window.tzinfo
    if task.light == Light.RED:
        if task.days_overdue > 0:
            return f"已逾期 {task.days_overdue} 天"
        if task.report_due_at is not None and task.report_due_at <= window:
            due = format_date_zh(task.report_due_at.astimezone(zone))
            return f"进展报告逾期未报（应于{due}前报送）"
        return "已亮红灯"
    if task.light == Light.YELLOW:
        return "临近完成时限或进度滞后"
    if task.report_due_at is not None:
        due = format_date_zh(task.report_due_at.astimezone(zone))
        return f"进展报告将于{due}到期"
    return Light(task.light).label_zh


def _part_situation(unit: str, task: TaskCondition, window: datetime) -> str:
    mine = [p for p in task.missing_parts if p.unit == unit]
    if not mine:
        return "配合单位分项进展逾期未报"
    due = format_date_zh(mine[0].due_at.astimezone(window.tzinfo))
    count = f"共 {len(mine)} 期，" if len(mine) > 1 else ""
    return f"配合单位分项进展逾期未报（{count}应于{due}前报送）"


def _line(index: int, item: PlannedNotification, task: TaskCondition, window: datetime) -> TaskLine:
    zone = window.tzinfo
    situation = _situation(task, window)
    reasons = task.reasons_zh
    if item.recipient.role is RecipientRole.CO_UNIT_MISSING:
        # A co-unit chased for its part hears about its part, not the lead unit's reasons.
        situation = _part_situation(item.recipient.name, task, window)
        reasons = tuple(
            r for r in reasons if r.startswith(f"配合单位未报送：{item.recipient.name}（")
        )
    return TaskLine(
        index=index,
        task_id=task.task_id,
        title=task.task_title,
        level=item.level,
        level_name=item.level_name,
        sequence=item.sequence,
        light=task.light,
        light_zh=Light(task.light).label_zh,
        situation=situation,
        days_overdue=task.days_overdue,
        lead_units="、".join(task.lead_units),
        co_units="、".join(task.co_units),
        leaders="、".join(task.leaders),
        reasons="；".join(reasons),
        due_date=format_date_zh(
            task.due_at.astimezone(zone) if task.due_at else None, with_year=True
        ),
        action=item.action,
        respond_by=format_date_zh(item.respond_by),
    )


def _subject_state(lines: list[TaskLine]) -> str:
    lights = {line.light for line in lines}
    if lights == {Light.RED}:
        return "已逾期"
    if Light.RED in lights:
        return "存在逾期或滞后"
    if lights == {Light.YELLOW}:
        return "临近时限或进度滞后"
    if Light.YELLOW in lights:
        return "需加快推进或报送进展"
    return "进展报告即将到期"


@lru_cache(maxsize=1)
def _environments() -> tuple[Environment, Environment, Environment]:
    loader = FileSystemLoader(TEMPLATES)
    common: dict[str, Any] = {
        "loader": loader,
        "undefined": StrictUndefined,
        "trim_blocks": True,
        "lstrip_blocks": True,
        "keep_trailing_newline": True,
    }
    plain = Environment(autoescape=False, finalize=_one_line, **common)  # noqa: S701 — not HTML
    markdown = Environment(autoescape=False, finalize=_markdown_safe, **common)  # noqa: S701
    html = Environment(autoescape=select_autoescape(["j2", "html"], default=True), **common)
    return plain, markdown, html


def _context(
    digest: Digest, tasks: Mapping[str, TaskCondition], system_url: str | None
) -> dict[str, Any]:
    if system_url is not None and urlsplit(system_url).scheme not in ("http", "https"):
        raise ValueError(f"system_url must be an http or https URL, got {system_url!r}")
    missing = [task_id for task_id in digest.task_ids if task_id not in tasks]
    if missing:
        raise KeyError(f"digest {digest.digest_id} names unknown tasks: {', '.join(missing)}")
    lines = [
        _line(index, item, tasks[task_id], digest.window_start)
        for index, (item, task_id) in enumerate(
            ((item, task_id) for item in digest.items for task_id in item.task_ids), start=1
        )
    ]
    return {
        "recipient": digest.recipient.name,
        "level_name": digest.level_name,
        "count": len(lines),
        "state": _subject_state(lines),
        "respond_by": format_date_zh(digest.respond_by),
        "tasks": lines,
        "digest_id": str(digest.digest_id),
        "window": format_date_zh(digest.window_start, with_year=True),
        "system_url": _TrustedMarkdown(system_url or ""),
    }


def render_message(
    digest: Digest,
    tasks: Mapping[str, TaskCondition],
    *,
    system_url: str | None = None,
) -> RenderedMessage:
    """Render a digest in Chinese; every task in it must be in `tasks`."""
    context = _context(digest, tasks, system_url)
    plain, markdown, html = _environments()
    subject = _one_line(plain.get_template("subject.j2").render(context))
    return RenderedMessage(
        subject_zh=subject,
        text=plain.get_template("text.j2").render(context),
        markdown=markdown.get_template("markdown.j2").render(context),
        html=html.get_template("html.j2").render(context),
    )


def render_plain(
    digest: Digest,
    tasks: Mapping[str, TaskCondition],
    *,
    system_url: str | None = None,
) -> tuple[str, str]:
    """The subject and plain text of a digest only (what the log stores)."""
    context = _context(digest, tasks, system_url)
    plain, _markdown, _html = _environments()
    subject = _one_line(plain.get_template("subject.j2").render(context))
    return subject, plain.get_template("text.j2").render(context)


SUBJECT_TITLE_CHARS = 40


def _subject_title(title: str) -> str:
    text = _one_line(title).rstrip("。；;，,. ")
    if len(text) > SUBJECT_TITLE_CHARS:
        return text[: SUBJECT_TITLE_CHARS - 1] + "…"
    return text


def render_notification(
    item: PlannedNotification, task: TaskCondition, *, system_url: str | None = None
) -> tuple[str, str]:
    """Subject and plain text of one notification on its own; the subject names the task."""
    if task.task_id not in item.task_ids:
        raise KeyError(f"notification {item.notification_id} is not about task {task.task_id}")
    single = Digest(
        digest_id=item.notification_id,
        recipient=item.recipient,
        channel=item.channel,
        window_start=item.window_start,
        items=(item,),
    )
    _subject, text = render_plain(single, {task.task_id: task}, system_url=system_url)
    line = _line(1, item, task, item.window_start)
    repeat = f"·第{item.sequence}次" if item.sequence > 1 else ""
    subject = f"【{item.level_name}{repeat}】{task.task_id} {_subject_title(task.task_title)}"
    return f"{subject}（{line.situation}）", text
