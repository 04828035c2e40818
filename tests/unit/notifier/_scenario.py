"""Task events, principals and policies for the use-case tests on the fakes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from services.notifier.escalation.policy import DEFAULT_POLICY_PATH, EscalationPolicy, parse_policy
from shared.events import ApiKeyPublished, TaskConditionChanged
from shared.kafka import MessagePosition

from ._builders import OFFICE, sh

HOUSING = "市住房城乡建设委"
FINANCE = "市财政局"
CIVIL = "市民政局"
POSITION = MessagePosition("duban.task-events", 0, 7)


def task_event(
    code: str = "T-A", *, at: dt.datetime, light: str, **overrides: Any
) -> TaskConditionChanged:
    """A task event as the tracker emits it at `at` (lead 市住房城乡建设委, co 市财政局)."""
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "occurred_at": at,
        "task_code": code,
        "title": "推进老旧小区改造",
        "section": "一、测试任务",
        "light": light,
        "previous_light": None,
        "light_since": at,
        "reasons": [],
        "status": "in_progress",
        "due": dt.date(2022, 6, 30),
        "original_due": dt.date(2022, 6, 30),
        "days_overdue": 0,
        "red_since": at if light == "red" else None,
        "report_due_at": None,
        "last_report_at": None,
        "lead_units": [HOUSING],
        "co_units": [FINANCE],
        "leaders": ["张副市长"],
    }
    fields.update(overrides)
    return TaskConditionChanged(**fields)


def red(code: str = "T-A", **overrides: Any) -> TaskConditionChanged:
    """Red since just after midnight on 1 July."""
    return task_event(code, at=sh(7, 1, 0, 5), light="red", **overrides)


def key(role: str, unit: str | None = None) -> ApiKeyPublished:
    """A directory API key for `role` (bound to `unit` for unit keys)."""
    return ApiKeyPublished(
        event_id=uuid.uuid4(),
        occurred_at=sh(1, 1),
        key_id=f"k-{role}-{unit or 'none'}",
        key_hash="0" * 64,
        role=role,
        unit=unit,
        expires_at=None,
        revoked=False,
    )


def office_webhook_policy() -> EscalationPolicy:
    """The shipped ladder with the office's notices on the webhook and the rest in the inbox."""
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    for old, new in (
        ("[email, wecom]", "[inbox]"),
        ("[email, dingtalk]", "[inbox]"),
        ("[email, webhook]", "[webhook]"),
        ("channels: [email]", "channels: [inbox]"),
    ):
        text = text.replace(old, new)
    return parse_policy(text, "office-webhook")


__all__ = ["OFFICE"]
