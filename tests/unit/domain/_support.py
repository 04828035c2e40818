"""Builders shared by the domain unit tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from services.tracker.domain import lights
from services.tracker.domain.cadence import ReportDue
from services.tracker.domain.lights import Evaluation, LightPolicy, TaskSnapshot
from services.tracker.policy.supervision import default_supervision_policy
from shared.clock import SHANGHAI
from shared.vocabulary import DeadlineKind, TaskStatus


def sh(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """An Asia/Shanghai wall-clock instant."""
    return datetime(year, month, day, hour, minute, second, tzinfo=SHANGHAI)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A UTC instant."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def task(**overrides: Any) -> TaskSnapshot:
    """A complete-by-date task for 2022, in progress, 100% reported, nothing special."""
    fields: dict[str, Any] = {
        "status": TaskStatus.IN_PROGRESS,
        "deadline_kind": DeadlineKind.COMPLETE,
        "start_date": date(2022, 1, 1),
        "due_date": date(2022, 12, 31),
        "created_at": sh(2022, 1, 1),
        "latest_percent": 100,
    }
    fields.update(overrides)
    return TaskSnapshot(**fields)


# The shipped policy's rules on plain calendar days: the rules the tests below were written
# for. Tests of the working calendar build their own with `policy(calendar=...)`.
POLICY: LightPolicy = replace(default_supervision_policy().light_policy(), calendar=None)


def policy(**overrides: Any) -> LightPolicy:
    """The shipped rules with `overrides`."""
    return replace(POLICY, **overrides)


def light_of(snapshot: TaskSnapshot, *, now: datetime, policy: LightPolicy = POLICY) -> Evaluation:
    """`domain.lights.light_of`, by the shipped rules unless told otherwise."""
    return lights.light_of(snapshot, now=now, policy=policy)


def owed_report(
    snapshot: TaskSnapshot, *, now: datetime, policy: LightPolicy = POLICY
) -> ReportDue | None:
    """`domain.lights.owed_report`, by the shipped rules unless told otherwise."""
    return lights.owed_report(snapshot, now=now, policy=policy)
