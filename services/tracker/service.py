"""Catalog-wide tracker jobs: scheduling every open task, reconciling the directory topic.

The per-task use cases (a report applied, a workflow action, the scan tick) live in
`usecases/`; these two work over whole tables and take the caller's session (the caller owns
the transaction).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.tracker import outbox
from services.tracker.adapters.sql import SqlOutbox
from services.tracker.orm import ApiKey, OutboxMessage, Task
from services.tracker.usecases.directory import (
    assignment_entry,
    key_entry,
    publish_assignment,
    publish_key,
)
from shared import topics
from shared.directory import DirectoryEntry, key_entity, task_entity


def _content(entry: DirectoryEntry | None) -> dict[str, Any] | None:
    """What an entry says, without the envelope that differs on every publication."""
    return None if entry is None else entry.model_dump(exclude={"event_id", "occurred_at"})


def reconcile_directory(
    session: Session, published: Mapping[str, DirectoryEntry], *, now: dt.datetime
) -> int:
    """Queue only the directory entries the topic does not hold as they are now.

    `published` is the topic's current state (its last value per key). Keys and tasks
    whose entry differs, is missing, or is live on the topic but no longer here (a revoked
    or deleted key, a deleted task) are queued, tombstones for the latter; entities with a
    change still waiting in the outbox are left to it. The rows are locked and read again
    before queueing, so a concurrent revocation is never overtaken by an older value.
    Returns how many entries were queued.
    """
    pending = set(
        session.execute(
            select(OutboxMessage.key).where(
                OutboxMessage.topic == topics.DIRECTORY, OutboxMessage.published_at.is_(None)
            )
        ).scalars()
    )
    stale_keys: set[int] = set()
    stale_tasks: set[int] = set()
    current: set[str] = set()
    for key in session.execute(select(ApiKey)).scalars():
        entity = key_entity(key.key_id)
        current.add(entity)
        if _content(key_entry(key, now=now)) != _content(published.get(entity)):
            stale_keys.add(key.id)
    for task in session.execute(select(Task)).scalars():
        entity = task_entity(task.code)
        current.add(entity)
        if _content(assignment_entry(task, now=now)) != _content(published.get(entity)):
            stale_tasks.add(task.id)
    queued = 0
    if stale_keys:
        for key in session.execute(
            select(ApiKey)
            .where(ApiKey.id.in_(stale_keys))
            .with_for_update(of=ApiKey)
            .execution_options(populate_existing=True)
        ).scalars():
            if key_entity(key.key_id) not in pending:
                publish_key(SqlOutbox(session), key, now=now)
                queued += 1
    if stale_tasks:
        for task in session.execute(
            select(Task)
            .where(Task.id.in_(stale_tasks))
            .with_for_update(of=Task)
            .execution_options(populate_existing=True)
        ).scalars():
            if task_entity(task.code) not in pending:
                publish_assignment(SqlOutbox(session), task, now=now)
                queued += 1
    for entity in sorted(published.keys() - current - pending):
        outbox.add(session, topic=topics.DIRECTORY, key=entity, event=None)
        queued += 1
    return queued
