"""Builders shared by the domain unit tests."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from services.tracker.domain.lights import TaskSnapshot
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
