"""Directory entries intake reads (who may report on a task, which keys are live)."""

from __future__ import annotations

import datetime as dt

from services.tracker.orm import ApiKey, Task
from services.tracker.usecases.ports import Outbox
from shared import topics
from shared.directory import key_entity, task_entity
from shared.events import ApiKeyPublished, TaskAssignmentPublished, new_event_id
from shared.vocabulary import ACCEPTING_REPORTS


def key_entry(key: ApiKey, *, now: dt.datetime) -> ApiKeyPublished | None:
    """A key's directory entry; None once revoked (published as a tombstone)."""
    if key.revoked_at is not None:
        return None
    return ApiKeyPublished(
        event_id=new_event_id(),
        occurred_at=now,
        key_id=key.key_id,
        key_hash=key.key_hash,
        role=key.role,
        unit=key.unit.name if key.unit else None,
        expires_at=key.expires_at,
        revoked=False,
    )


def assignment_entry(task: Task, *, now: dt.datetime) -> TaskAssignmentPublished:
    """A task's directory entry."""
    return TaskAssignmentPublished(
        event_id=new_event_id(),
        occurred_at=now,
        task_code=task.code,
        lead_units=task.lead_units,
        co_units=task.co_units,
        accepting_reports=task.status in ACCEPTING_REPORTS,
    )


def publish_key(outbox: Outbox, key: ApiKey, *, now: dt.datetime) -> None:
    """Queue one key's directory entry (a tombstone once it is revoked)."""
    outbox.add(topic=topics.DIRECTORY, key=key_entity(key.key_id), event=key_entry(key, now=now))


def publish_assignment(outbox: Outbox, task: Task, *, now: dt.datetime) -> None:
    """Queue one task's directory entry."""
    outbox.add(
        topic=topics.DIRECTORY, key=task_entity(task.code), event=assignment_entry(task, now=now)
    )
