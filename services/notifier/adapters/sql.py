"""The use cases' ports on Postgres: repositories over one session, and the unit of work.

Row locks (FOR UPDATE, SKIP LOCKED), ON CONFLICT inserts and advisory locks live here. A
record handed out is a copy; `save`/`save_all` copy changed fields back onto the row the
session holds, so the flush writes what a use case changed and nothing else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Self, TypeVar

from sqlalchemy import (
    BindParameter,
    Select,
    all_,
    any_,
    bindparam,
    func,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import Text

from services.notifier.access import Scope
from services.notifier.orm import (
    AcknowledgementRow,
    Base,
    DigestRow,
    NotificationRow,
    ProcessedEventRow,
    SnoozeRow,
    TaskConditionRow,
)
from services.notifier.usecases.ports import (
    CANCELLED,
    DELIVERED,
    PENDING,
    SENDING,
    AcknowledgementRecord,
    Delivered,
    DigestRecord,
    NotificationFilter,
    NotificationRecord,
    SnoozeRecord,
    StoredCondition,
)
from shared.db import UnitOfWork
from shared.locks import AdvisoryLock
from shared.processed import SqlProcessedEvents

# One tick at a time across every replica (pg_advisory_xact_lock).
ESCALATION_LOCK_KEY = int(AdvisoryLock.ESCALATION_TICK)
# One composer at a time across replicas, so one recipient's rows are never split between two.
COMPOSE_LOCK_KEY = int(AdvisoryLock.DIGEST_COMPOSE)

R = TypeVar("R")


def text_array(values: Iterable[str]) -> BindParameter[Any]:
    """One array parameter instead of one placeholder per value (`= ANY(:values)`)."""
    return bindparam(None, list(values), type_=ARRAY(Text()))


def uuid_array(values: Sequence[uuid.UUID]) -> BindParameter[Any]:
    """One array parameter of ids (`= ANY(:ids)`), not one placeholder per id."""
    return bindparam(None, list(values), type_=ARRAY(UUID(as_uuid=True)))


def _record(kind: type[R], row: Base) -> R:
    names = [f.name for f in dataclasses.fields(kind)]  # type: ignore[arg-type]
    values = {name: getattr(row, name) for name in names}
    # Arrays and JSON are copied, so changing a record never changes the row behind it.
    for name, value in values.items():
        if isinstance(value, list):
            values[name] = list(value)
        elif isinstance(value, dict):
            values[name] = dict(value)
    return kind(**values)


def _values(record: Any) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def _copy_onto(row: Base, record: Any) -> None:
    for name, value in _values(record).items():
        if getattr(row, name) != value:
            setattr(row, name, value)


class SqlConditions:
    """Task conditions in `notifier.task_conditions`."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, task_code: str, *, for_update: bool = False) -> StoredCondition | None:
        # Lock, then decide: a copy already in the session is refreshed from the locked row.
        row = self._session.get(
            TaskConditionRow,
            task_code,
            with_for_update=for_update or None,
            populate_existing=for_update,
        )
        return _record(StoredCondition, row) if row is not None else None

    def put(self, condition: StoredCondition) -> None:
        row = self._session.get(TaskConditionRow, condition.task_code)
        if row is None:
            self._session.add(TaskConditionRow(**_values(condition)))
        else:
            _copy_onto(row, condition)

    def all(self, codes: Sequence[str] | None = None) -> list[StoredCondition]:
        query = select(TaskConditionRow)
        if codes is not None:
            query = query.where(TaskConditionRow.task_code == any_(text_array(codes)))
        rows = self._session.execute(query.order_by(TaskConditionRow.task_code)).scalars()
        return [_record(StoredCondition, row) for row in rows]


class SqlNotifications:
    """The notification log in `notifier.notifications`."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def _records(self, query: Select[Any]) -> list[NotificationRecord]:
        rows = self._session.execute(query).scalars()
        return [_record(NotificationRecord, row) for row in rows]

    def add_new(self, records: Sequence[NotificationRecord]) -> list[tuple[uuid.UUID, int]]:
        if not records:
            return []
        values = [_values(record) for record in records]
        return [
            (new_id, level)
            for new_id, level in self._session.execute(
                insert(NotificationRow)
                .on_conflict_do_nothing()
                .returning(NotificationRow.id, NotificationRow.level),
                values,
            )
        ]

    def by_ids(self, ids: Sequence[uuid.UUID]) -> list[NotificationRecord]:
        return self._records(
            select(NotificationRow).where(NotificationRow.id == any_(uuid_array(ids)))
        )

    def unclaimed(self, limit: int, *, now: dt.datetime) -> list[NotificationRecord]:
        return self._records(
            select(NotificationRow)
            .where(
                NotificationRow.status == PENDING,
                NotificationRow.digest_id.is_(None),
                or_(NotificationRow.not_before.is_(None), NotificationRow.not_before <= now),
            )
            .order_by(
                NotificationRow.recipient_role,
                NotificationRow.recipient,
                NotificationRow.channel,
                NotificationRow.window_start,
                NotificationRow.created_at,
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        )

    def of_digest(
        self, digest_id: uuid.UUID, *, for_update: bool = False
    ) -> list[NotificationRecord]:
        query = (
            select(NotificationRow)
            .where(NotificationRow.digest_id == digest_id)
            .order_by(NotificationRow.id)
        )
        return self._records(query.with_for_update() if for_update else query)

    def save_all(self, records: Sequence[NotificationRecord]) -> None:
        for record in records:
            row = self._session.get(NotificationRow, record.id)
            if row is None:
                raise LookupError(f"notification {record.id} is not stored")
            _copy_onto(row, record)

    def cancel_unplanned(self, planned: Sequence[uuid.UUID], reason: str) -> int:
        cancelled = self._session.execute(
            update(NotificationRow)
            .where(
                NotificationRow.status == PENDING,
                NotificationRow.digest_id.is_(None),
                NotificationRow.id != all_(uuid_array(planned)) if planned else true(),
            )
            .values(status=CANCELLED, last_error=reason)
            .returning(NotificationRow.id)
        ).all()
        return len(cancelled)

    def delivered_about(self, codes: Sequence[str]) -> list[Delivered]:
        rows = self._session.execute(
            select(
                NotificationRow.task_codes,
                NotificationRow.level,
                NotificationRow.recipient_role,
                NotificationRow.recipient,
                NotificationRow.delivered_at,
            ).where(
                NotificationRow.status == DELIVERED,
                NotificationRow.task_codes.overlap(list(codes)),
            )
        )
        return [Delivered(*row) for row in rows]

    def any_delivered(self, task_code: str, level: int, scope: Scope) -> bool:
        found = self._session.execute(
            select(NotificationRow.id)
            .where(
                NotificationRow.task_codes.contains([task_code]),
                NotificationRow.level == level,
                NotificationRow.status == DELIVERED,
                scope.where(NotificationRow.recipient),
            )
            .limit(1)
        ).first()
        return found is not None

    def any_about(self, task_code: str, scope: Scope) -> bool:
        found = self._session.execute(
            select(NotificationRow.id)
            .where(
                NotificationRow.task_codes.contains([task_code]),
                scope.where(NotificationRow.recipient),
            )
            .limit(1)
        ).first()
        return found is not None

    def about_task(self, task_code: str, scope: Scope, limit: int) -> list[NotificationRecord]:
        return self._records(
            select(NotificationRow)
            .where(
                NotificationRow.task_codes.contains([task_code]),
                scope.where(NotificationRow.recipient),
            )
            .order_by(NotificationRow.created_at, NotificationRow.level, NotificationRow.id)
            .limit(limit)
        )

    def page(
        self, scope: Scope, wanted: NotificationFilter, *, limit: int, offset: int
    ) -> tuple[list[NotificationRecord], int]:
        query: Select[Any] = select(NotificationRow).where(scope.where(NotificationRow.recipient))
        if wanted.recipient is not None:
            query = query.where(NotificationRow.recipient == wanted.recipient)
        if wanted.task_code is not None:
            query = query.where(NotificationRow.task_codes.contains([wanted.task_code]))
        if wanted.level is not None:
            query = query.where(NotificationRow.level == wanted.level)
        if wanted.status is not None:
            query = query.where(NotificationRow.status == wanted.status)
        if wanted.channel is not None:
            query = query.where(NotificationRow.channel == wanted.channel)
        total = self._session.execute(
            select(func.count()).select_from(query.subquery())
        ).scalar_one()
        rows = self._records(
            query.order_by(
                NotificationRow.created_at.desc(), NotificationRow.level.desc(), NotificationRow.id
            )
            .limit(limit)
            .offset(offset)
        )
        return rows, int(total)

    def count_pending(self) -> int:
        return int(
            self._session.execute(
                select(func.count())
                .select_from(NotificationRow)
                .where(NotificationRow.status == PENDING)
            ).scalar_one()
        )


class SqlDigests:
    """Composed messages in `notifier.digests`."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add_new(self, records: Sequence[DigestRecord]) -> None:
        if records:
            self._session.execute(
                insert(DigestRow).on_conflict_do_nothing(), [_values(r) for r in records]
            )

    def get(self, digest_id: uuid.UUID) -> DigestRecord | None:
        row = self._session.get(DigestRow, digest_id)
        return _record(DigestRecord, row) if row is not None else None

    def lock_next_due(self, now: dt.datetime, database_now: dt.datetime) -> DigestRecord | None:
        row = self._session.execute(
            select(DigestRow)
            .where(
                DigestRow.status == SENDING,
                or_(DigestRow.next_attempt_at.is_(None), DigestRow.next_attempt_at <= now),
                or_(DigestRow.leased_until.is_(None), DigestRow.leased_until <= database_now),
            )
            .order_by(DigestRow.created_at, DigestRow.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).scalar_one_or_none()
        return _record(DigestRecord, row) if row is not None else None

    def lock_leased(self, digest_id: uuid.UUID, owner: str) -> DigestRecord | None:
        row = self._session.execute(
            select(DigestRow)
            .where(DigestRow.id == digest_id, DigestRow.lease_owner == owner)
            .with_for_update()
        ).scalar_one_or_none()
        return _record(DigestRecord, row) if row is not None else None

    def save(self, record: DigestRecord) -> None:
        row = self._session.get(DigestRow, record.id)
        if row is None:
            raise LookupError(f"digest {record.id} is not stored")
        _copy_onto(row, record)


class SqlAcknowledgements:
    """签收 in `notifier.acknowledgements`."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, record: AcknowledgementRecord) -> None:
        self._session.add(AcknowledgementRow(**_values(record)))
        self._session.flush()

    def of_tasks(self, codes: Sequence[str]) -> list[AcknowledgementRecord]:
        rows = self._session.execute(
            select(AcknowledgementRow).where(
                AcknowledgementRow.task_code == any_(text_array(codes))
            )
        ).scalars()
        return [_record(AcknowledgementRecord, row) for row in rows]

    def of_task(self, task_code: str) -> list[AcknowledgementRecord]:
        rows = self._session.execute(
            select(AcknowledgementRow)
            .where(AcknowledgementRow.task_code == task_code)
            .order_by(AcknowledgementRow.acknowledged_at)
        ).scalars()
        return [_record(AcknowledgementRecord, row) for row in rows]


class SqlSnoozes:
    """Snoozes in `notifier.snoozes`."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, record: SnoozeRecord) -> None:
        self._session.add(SnoozeRow(**_values(record)))
        self._session.flush()

    def get(self, snooze_id: uuid.UUID, *, for_update: bool = False) -> SnoozeRecord | None:
        # Lock, then decide: a copy already in the session is refreshed from the locked row.
        row = self._session.get(
            SnoozeRow, snooze_id, with_for_update=for_update or None, populate_existing=for_update
        )
        return _record(SnoozeRecord, row) if row is not None else None

    def save(self, record: SnoozeRecord) -> None:
        row = self._session.get(SnoozeRow, record.id)
        if row is None:
            raise LookupError(f"snooze {record.id} is not stored")
        _copy_onto(row, record)

    def in_force(self, codes: Sequence[str], now: dt.datetime) -> list[SnoozeRecord]:
        rows = self._session.execute(
            select(SnoozeRow).where(
                SnoozeRow.task_code == any_(text_array(codes)),
                SnoozeRow.until > now,
                SnoozeRow.cancelled_at.is_(None),
            )
        ).scalars()
        return [_record(SnoozeRecord, row) for row in rows]

    def of_task(self, task_code: str) -> list[SnoozeRecord]:
        rows = self._session.execute(
            select(SnoozeRow).where(SnoozeRow.task_code == task_code).order_by(SnoozeRow.created_at)
        ).scalars()
        return [_record(SnoozeRecord, row) for row in rows]


class SqlLocks:
    """Transaction-scoped advisory locks."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def planning(self) -> None:
        self._session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": ESCALATION_LOCK_KEY}
        )

    def try_composing(self) -> bool:
        return bool(
            self._session.execute(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": COMPOSE_LOCK_KEY}
            ).scalar_one()
        )


class SqlUnitOfWork(UnitOfWork):
    """One transaction on a new session (`shared.db.UnitOfWork`), with the notifier's
    repositories over it: `with uow: ...; uow.commit()`; the rest rolls back."""

    processed_events: SqlProcessedEvents
    conditions: SqlConditions
    notifications: SqlNotifications
    digests: SqlDigests
    acknowledgements: SqlAcknowledgements
    snoozes: SqlSnoozes
    locks: SqlLocks

    def __enter__(self) -> Self:
        session = super().__enter__().session
        self.processed_events = SqlProcessedEvents(session, ProcessedEventRow)
        self.conditions = SqlConditions(session)
        self.notifications = SqlNotifications(session)
        self.digests = SqlDigests(session)
        self.acknowledgements = SqlAcknowledgements(session)
        self.snoozes = SqlSnoozes(session)
        self.locks = SqlLocks(session)
        return self

    def database_now(self) -> dt.datetime:
        """The database's `now()`: the transaction's start, the same clock for every replica."""
        now: dt.datetime = self.session.execute(select(func.now())).scalar_one()
        return now


def unit_of_work_factory(session_factory: sessionmaker[Session]) -> Callable[[], SqlUnitOfWork]:
    """A factory of SQL units of work, for use cases that need one per transaction."""
    return functools.partial(SqlUnitOfWork, session_factory)
