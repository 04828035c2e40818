"""The use cases' ports on Postgres, over the caller's session (the caller owns the transaction).

Locks are taken here: a task or key to decide on is read `FOR UPDATE` with
`populate_existing`, so a copy the session already holds (sessions keep objects across
commits) is refreshed from the locked row; the scan takes its batch `SKIP LOCKED`; a
processed event is marked with `ON CONFLICT DO NOTHING`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.tracker import outbox
from services.tracker.orm import (
    ApiKey,
    ExtensionDecision,
    ProcessedEvent,
    Report,
    Task,
    TaskAction,
    Unit,
)
from shared.processed import SqlProcessedEvents
from shared.vocabulary import UnitRole


def lock_task(session: Session, code: str) -> Task | None:
    """The task, locked until the transaction ends and read as of the lock; None if unknown.

    Every decision about a task (a workflow action, a report being applied) starts here:
    lock, then decide. A copy already in the session (loaded earlier in the request, or kept
    from an earlier transaction, since sessions do not expire on commit) is refreshed from
    the locked row, so no rule is checked against a state someone else has since changed.
    """
    return session.execute(
        select(Task)
        .where(Task.code == code)
        .with_for_update(of=Task)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def lock_key(session: Session, *, key_id: str) -> ApiKey | None:
    """The key, locked until the transaction ends and read as of the lock (lock, then decide).

    A copy already in the session is refreshed from the locked row, so a change to a key is
    never decided on a state another request has since changed.
    """
    return session.execute(
        select(ApiKey)
        .where(ApiKey.key_id == key_id)
        .with_for_update(of=ApiKey)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


class SqlTasks:
    """`ports.Tasks` on the tracker's tables."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get_for_update(self, code: str) -> Task | None:
        """See `lock_task`."""
        return lock_task(self.session, code)

    def due_for_evaluation(self, now: dt.datetime, *, limit: int) -> Sequence[Task]:
        """Due tasks, earliest first, locked; rows other replicas hold are skipped."""
        return (
            self.session.execute(
                select(Task)
                .where(Task.next_evaluation_at <= now)
                .order_by(Task.next_evaluation_at)
                .limit(limit)
                .with_for_update(skip_locked=True, of=Task)
            )
            .scalars()
            .all()
        )

    def leader_known(self, leader: str) -> bool:
        """Whether some task names this leader."""
        found = self.session.execute(
            select(Task.id).where(Task.leaders.contains([leader])).limit(1)
        ).first()
        return found is not None


class SqlUnits:
    """`ports.Units`."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def by_name(self, name: str) -> Unit | None:
        """The unit of this name."""
        return self.session.execute(select(Unit).where(Unit.name == name)).scalar_one_or_none()


class SqlReports:
    """`ports.Reports`."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, report: Report) -> None:
        """Store a report."""
        self.session.add(report)

    def latest_lead(self, task_id: int) -> Report | None:
        """The lead unit's latest report not returned."""
        return self.session.execute(
            select(Report)
            .where(
                Report.task_id == task_id,
                Report.role == UnitRole.LEAD,
                Report.returned_at.is_(None),
            )
            .order_by(Report.submitted_at.desc())
            .limit(1)
        ).scalar_one_or_none()

    def parts_among(self, task_id: int, event_ids: Sequence[uuid.UUID]) -> Sequence[Report]:
        """The co-unit parts of this task among `event_ids`."""
        if not event_ids:
            return []
        return (
            self.session.execute(
                select(Report).where(
                    Report.task_id == task_id,
                    Report.role == UnitRole.CO,
                    Report.event_id.in_(list(event_ids)),
                )
            )
            .scalars()
            .all()
        )


class SqlTimeline:
    """`ports.Timeline`."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, action: TaskAction) -> None:
        """Record an entry."""
        self.session.add(action)


class SqlOutbox:
    """`ports.Outbox`: rows of `tracker.outbox`, relayed by `outbox.run_relay`."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, *, topic: str, key: str, event: BaseModel | None) -> None:
        """Queue an event in the caller's transaction."""
        outbox.add(self.session, topic=topic, key=key, event=event)


class SqlExtensionDecisions:
    """`ports.ExtensionDecisions`."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, decision: ExtensionDecision) -> None:
        """Record a decision."""
        self.session.add(decision)


class SqlApiKeys:
    """`ports.ApiKeys`."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, key: ApiKey) -> None:
        """Store a new key."""
        self.session.add(key)

    def get_for_update(self, key_id: str) -> ApiKey | None:
        """See `lock_key`."""
        return lock_key(self.session, key_id=key_id)


class SqlUnitOfWork:
    """`ports.UnitOfWork` over the caller's session; the caller commits or rolls back."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.tasks = SqlTasks(session)
        self.units = SqlUnits(session)
        self.processed = SqlProcessedEvents(session, ProcessedEvent)
        self.reports = SqlReports(session)
        self.timeline = SqlTimeline(session)
        self.outbox = SqlOutbox(session)
        self.extensions = SqlExtensionDecisions(session)
        self.keys = SqlApiKeys(session)

    def flush(self) -> None:
        """Write what is pending (ids assigned), without committing."""
        self.session.flush()
