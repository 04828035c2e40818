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
from sqlalchemy import and_, exists, literal, or_, select, tuple_, union_all
from sqlalchemy.orm import Session, aliased

from services.tracker import access, outbox
from services.tracker.auth import Principal
from services.tracker.orm import (
    ApiKey,
    ExtensionDecision,
    ProcessedEvent,
    Report,
    Task,
    TaskAction,
    Unit,
)
from services.tracker.usecases.ports import PendingRow
from shared.processed import SqlProcessedEvents
from shared.vocabulary import DecisionKind, TaskStatus, UnitRole


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


class SqlDecisions:
    """`ports.Decisions`: one UNION ALL over reports and tasks, keyset-paginated."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def pending(
        self,
        principal: Principal,
        *,
        after: tuple[dt.datetime, int, int] | None,
        limit: int,
    ) -> Sequence[PendingRow]:
        """See `ports.Decisions.pending`; the visibility filter is `access.visible_tasks`."""
        open_task = and_(Task.status != TaskStatus.CLOSED, access.visible_tasks(principal))
        newer = aliased(Report)
        reviews = (
            select(
                literal(DecisionKind.REPORT_REVIEW.value).label("kind"),
                Report.submitted_at.label("since"),
                literal(0).label("rank"),
                Report.id.label("ref_id"),
                Task.id.label("task_id"),
            )
            .join(Task, Task.id == Report.task_id)
            .where(
                open_task,
                Report.role == UnitRole.LEAD,
                Report.returned_at.is_(None),
                Report.accepted_at.is_(None),
                ~exists().where(
                    newer.task_id == Report.task_id,
                    newer.role == UnitRole.LEAD,
                    tuple_(newer.submitted_at, newer.id) > tuple_(Report.submitted_at, Report.id),
                ),
            )
        )
        extensions = select(
            literal(DecisionKind.EXTENSION_REQUEST.value).label("kind"),
            Task.pending_extension_asked_at.label("since"),
            literal(1).label("rank"),
            Task.id.label("ref_id"),
            Task.id.label("task_id"),
        ).where(
            open_task,
            Task.pending_extension_due.is_not(None),
            Task.pending_extension_asked_at.is_not(None),
        )
        completions = select(
            literal(DecisionKind.COMPLETION_REQUEST.value).label("kind"),
            Task.completion_requested_at.label("since"),
            literal(2).label("rank"),
            Task.id.label("ref_id"),
            Task.id.label("task_id"),
        ).where(
            open_task,
            Task.status == TaskStatus.COMPLETION_REQUESTED,
            Task.completion_requested_at.is_not(None),
        )
        queue = union_all(reviews, extensions, completions).subquery("queue")
        query = select(queue)
        if after is not None:
            since, rank, ref_id = after
            query = query.where(
                or_(
                    queue.c.since > since,
                    and_(
                        queue.c.since == since,
                        tuple_(queue.c.rank, queue.c.ref_id) > tuple_(rank, ref_id),
                    ),
                )
            )
        found = self.session.execute(
            query.order_by(queue.c.since, queue.c.rank, queue.c.ref_id).limit(limit)
        ).all()
        task_ids = {row.task_id for row in found}
        tasks = {
            t.id: t
            for t in self.session.execute(select(Task).where(Task.id.in_(task_ids))).scalars()
        }
        report_ids = [row.ref_id for row in found if row.rank == 0]
        reports = {
            r.id: r
            for r in self.session.execute(select(Report).where(Report.id.in_(report_ids))).scalars()
        }
        return [
            PendingRow(
                kind=row.kind,
                since=row.since,
                rank=row.rank,
                ref_id=row.ref_id,
                task=tasks[row.task_id],
                report=reports.get(row.ref_id) if row.rank == 0 else None,
            )
            for row in found
        ]


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
        self.decisions = SqlDecisions(session)

    def flush(self) -> None:
        """Write what is pending (ids assigned), without committing."""
        self.session.flush()
