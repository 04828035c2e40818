"""Builders and a small delivery simulator shared by the notifier unit tests."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.notifier.escalation.engine import (
    Ack,
    PlannedNotification,
    SentRecord,
    Snooze,
    TaskCondition,
    evaluate,
    group_into_digests,
    sent_records,
)
from services.notifier.escalation.policy import EscalationPolicy, default_policy

SHANGHAI = ZoneInfo("Asia/Shanghai")
OFFICE = "市政府办公厅督查室"


def sh(month: int, day: int, hour: int = 9, minute: int = 0, year: int = 2022) -> datetime:
    """An Asia/Shanghai wall-clock instant in 2022."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def any_hour(policy: EscalationPolicy) -> EscalationPolicy:
    """The policy without its quiet hours: every level goes out as soon as it is due."""
    return policy.model_copy(update={"quiet_hours": None})


def task(**overrides: Any) -> TaskCondition:
    """An in-progress task due 2022-06-30, lead 市住房城乡建设委, green unless told otherwise."""
    fields: dict[str, Any] = {
        "task_id": "T-001",
        "task_title": "推进老旧小区改造",
        "light": "green",
        "status": "in_progress",
        "reasons_zh": (),
        "days_overdue": 0,
        "lead_units": ("市住房城乡建设委",),
        "co_units": ("市财政局",),
        "leaders": ("张副市长",),
        "due_at": sh(6, 30, 23, 59),
    }
    fields.update(overrides)
    return TaskCondition(**fields)


Key = tuple[int, str, str, str]  # level, role, name, channel


def keys(planned: Iterable[PlannedNotification]) -> set[Key]:
    """What was planned, as comparable tuples."""
    return {(n.level, n.recipient.role.value, n.recipient.name, n.channel.value) for n in planned}


@dataclass
class Simulator:
    """Runs the planner at chosen instants and 'delivers' everything it plans."""

    # The shipped ladder at any hour: these tests count calendar days across weekends; quiet
    # hours are tested on their own (test_quiet_hours.py).
    policy: EscalationPolicy = field(default_factory=lambda: any_hour(default_policy()))
    history: list[SentRecord] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    snoozes: list[Snooze] = field(default_factory=list)

    def tick(self, now: datetime, *conditions: TaskCondition) -> list[PlannedNotification]:
        """Plan at `now`, record every digest that may go now as delivered a minute later,
        and return those. A notice quiet hours hold is not sent yet: a later tick within the
        hours plans it again (the same id) and sends it then, as the dispatcher would."""
        plan = evaluate(conditions, self.history, self.acks, self.snoozes, self.policy, now)
        planned = [n for n in plan.notifications if n.not_before is None or n.not_before <= now]
        for digest in group_into_digests(planned):
            self.history += sent_records(digest, now.replace(minute=now.minute + 1))
        return planned
