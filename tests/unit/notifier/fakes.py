"""In-memory repositories and unit of work for the notifier's use cases (usecases/ports.py).

A `FakeStore` holds the committed tables. Each `FakeUnitOfWork` works on a copy taken when
its block opens and writes the copy back only on `commit`, so whatever a use case does
without a commit is gone, as a rolled-back transaction would be. Records handed out are
copies too: a use case's change reaches the store only through `save`/`save_all`.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar

from services.notifier.access import Scope
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
from shared.kafka import MessagePosition

T = TypeVar("T")


def _copy(value: T) -> T:
    return copy.deepcopy(value)


@dataclass
class Tables:
    """The notifier's tables, as dictionaries and lists of records."""

    processed: dict[uuid.UUID, MessagePosition] = field(default_factory=dict)
    conditions: dict[str, StoredCondition] = field(default_factory=dict)
    notifications: dict[uuid.UUID, NotificationRecord] = field(default_factory=dict)
    digests: dict[uuid.UUID, DigestRecord] = field(default_factory=dict)
    acknowledgements: list[AcknowledgementRecord] = field(default_factory=list)
    snoozes: list[SnoozeRecord] = field(default_factory=list)


@dataclass
class FakeStore:
    """The committed state, the storage's clock, and what the locks saw."""

    tables: Tables = field(default_factory=Tables)
    database_now: dt.datetime = dt.datetime(2022, 7, 1, 1, 0, tzinfo=dt.UTC)
    composer_busy: bool = False  # another replica holds the composer's lock
    planning_locks: int = 0
    commits: int = 0

    def uow(self) -> FakeUnitOfWork:
        """A new unit of work on this store (the use cases' `new_uow`)."""
        return FakeUnitOfWork(self)


class FakeProcessedEvents:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def mark(self, event_id: uuid.UUID, position: MessagePosition) -> bool:
        if event_id in self._t.processed:
            return False
        self._t.processed[event_id] = position
        return True


class FakeConditions:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def get(self, task_code: str, *, for_update: bool = False) -> StoredCondition | None:
        return _copy(self._t.conditions.get(task_code))

    def put(self, condition: StoredCondition) -> None:
        self._t.conditions[condition.task_code] = _copy(condition)

    def all(self, codes: Sequence[str] | None = None) -> list[StoredCondition]:
        return [
            _copy(c)
            for code, c in sorted(self._t.conditions.items())
            if codes is None or code in codes
        ]


class FakeNotifications:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    @property
    def _rows(self) -> list[NotificationRecord]:
        return list(self._t.notifications.values())

    def add_new(self, records: Sequence[NotificationRecord]) -> list[tuple[uuid.UUID, int]]:
        inserted: list[tuple[uuid.UUID, int]] = []
        for record in records:
            # The primary key and the unique (notification_id, channel) pair.
            taken = {(r.notification_id, r.channel) for r in self._rows}
            if record.id in self._t.notifications or (
                (record.notification_id, record.channel) in taken
            ):
                continue
            self._t.notifications[record.id] = _copy(record)
            inserted.append((record.id, record.level))
        return inserted

    def by_ids(self, ids: Sequence[uuid.UUID]) -> list[NotificationRecord]:
        return [_copy(self._t.notifications[i]) for i in ids if i in self._t.notifications]

    def unclaimed(self, limit: int, *, now: dt.datetime) -> list[NotificationRecord]:
        rows = [
            r
            for r in self._rows
            if r.status == PENDING
            and r.digest_id is None
            and (r.not_before is None or r.not_before <= now)
        ]
        rows.sort(
            key=lambda r: (r.recipient_role, r.recipient, r.channel, r.window_start, r.created_at)
        )
        return _copy(rows[:limit])

    def of_digest(
        self, digest_id: uuid.UUID, *, for_update: bool = False
    ) -> list[NotificationRecord]:
        return _copy(sorted((r for r in self._rows if r.digest_id == digest_id), key=_by_id))

    def save_all(self, records: Sequence[NotificationRecord]) -> None:
        for record in records:
            if record.id not in self._t.notifications:
                raise LookupError(f"notification {record.id} is not stored")
            self._t.notifications[record.id] = _copy(record)

    def cancel_unplanned(self, planned: Sequence[uuid.UUID], reason: str) -> int:
        keep = set(planned)
        stale = [
            r
            for r in self._rows
            if r.status == PENDING and r.digest_id is None and r.id not in keep
        ]
        for row in stale:
            row.status, row.last_error = CANCELLED, reason
        return len(stale)

    def delivered_about(self, codes: Sequence[str]) -> list[Delivered]:
        return [
            Delivered(list(r.task_codes), r.level, r.recipient_role, r.recipient, r.delivered_at)
            for r in self._rows
            if r.status == DELIVERED and set(r.task_codes) & set(codes)
        ]

    def any_delivered(self, task_code: str, level: int, scope: Scope) -> bool:
        return any(
            task_code in r.task_codes
            and r.level == level
            and r.status == DELIVERED
            and scope.sees(r.recipient)
            for r in self._rows
        )

    def any_about(self, task_code: str, scope: Scope) -> bool:
        return any(task_code in r.task_codes and scope.sees(r.recipient) for r in self._rows)

    def about_task(self, task_code: str, scope: Scope, limit: int) -> list[NotificationRecord]:
        rows = [r for r in self._rows if task_code in r.task_codes and scope.sees(r.recipient)]
        rows.sort(key=lambda r: (r.created_at, r.level, r.id))
        return _copy(rows[:limit])

    def page(
        self, scope: Scope, wanted: NotificationFilter, *, limit: int, offset: int
    ) -> tuple[list[NotificationRecord], int]:
        rows = [
            r
            for r in self._rows
            if scope.sees(r.recipient)
            and wanted.recipient in (None, r.recipient)
            and (wanted.task_code is None or wanted.task_code in r.task_codes)
            and wanted.level in (None, r.level)
            and wanted.status in (None, r.status)
            and wanted.channel in (None, r.channel)
        ]
        # Newest first, higher levels first, then by id (stable sorts, last key first).
        rows.sort(key=_by_id)
        rows.sort(key=lambda r: (r.created_at, r.level), reverse=True)
        return _copy(rows[offset : offset + limit]), len(rows)

    def count_pending(self) -> int:
        return sum(1 for r in self._rows if r.status == PENDING)


def _by_id(record: Any) -> uuid.UUID:
    value: uuid.UUID = record.id
    return value


class FakeDigests:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def add_new(self, records: Sequence[DigestRecord]) -> None:
        for record in records:
            self._t.digests.setdefault(record.id, _copy(record))

    def get(self, digest_id: uuid.UUID) -> DigestRecord | None:
        return _copy(self._t.digests.get(digest_id))

    def lock_next_due(self, now: dt.datetime, database_now: dt.datetime) -> DigestRecord | None:
        due = [
            d
            for d in self._t.digests.values()
            if d.status == SENDING
            and (d.next_attempt_at is None or d.next_attempt_at <= now)
            and (d.leased_until is None or d.leased_until <= database_now)
        ]
        due.sort(key=lambda d: (d.created_at, d.id))
        return _copy(due[0]) if due else None

    def lock_leased(self, digest_id: uuid.UUID, owner: str) -> DigestRecord | None:
        found = self._t.digests.get(digest_id)
        return _copy(found) if found is not None and found.lease_owner == owner else None

    def save(self, record: DigestRecord) -> None:
        if record.id not in self._t.digests:
            raise LookupError(f"digest {record.id} is not stored")
        self._t.digests[record.id] = _copy(record)


class FakeAcknowledgements:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def add(self, record: AcknowledgementRecord) -> None:
        self._t.acknowledgements.append(_copy(record))

    def of_tasks(self, codes: Sequence[str]) -> list[AcknowledgementRecord]:
        return [_copy(a) for a in self._t.acknowledgements if a.task_code in codes]

    def of_task(self, task_code: str) -> list[AcknowledgementRecord]:
        found = [a for a in self._t.acknowledgements if a.task_code == task_code]
        return _copy(sorted(found, key=lambda a: a.acknowledged_at))


class FakeSnoozes:
    def __init__(self, tables: Tables) -> None:
        self._t = tables

    def add(self, record: SnoozeRecord) -> None:
        self._t.snoozes.append(_copy(record))

    def get(self, snooze_id: uuid.UUID, *, for_update: bool = False) -> SnoozeRecord | None:
        return next((_copy(s) for s in self._t.snoozes if s.id == snooze_id), None)

    def save(self, record: SnoozeRecord) -> None:
        for index, stored in enumerate(self._t.snoozes):
            if stored.id == record.id:
                self._t.snoozes[index] = _copy(record)
                return
        raise LookupError(f"snooze {record.id} is not stored")

    def in_force(self, codes: Sequence[str], now: dt.datetime) -> list[SnoozeRecord]:
        return [
            _copy(s)
            for s in self._t.snoozes
            if s.task_code in codes and s.until > now and s.cancelled_at is None
        ]

    def of_task(self, task_code: str) -> list[SnoozeRecord]:
        found = [s for s in self._t.snoozes if s.task_code == task_code]
        return _copy(sorted(found, key=lambda s: s.created_at))


class FakeLocks:
    def __init__(self, store: FakeStore) -> None:
        self._store = store

    def planning(self) -> None:
        self._store.planning_locks += 1

    def try_composing(self) -> bool:
        return not self._store.composer_busy


class FakeUnitOfWork:
    """A unit of work on a copy of the store's tables, written back only by `commit`."""

    processed_events: FakeProcessedEvents
    conditions: FakeConditions
    notifications: FakeNotifications
    digests: FakeDigests
    acknowledgements: FakeAcknowledgements
    snoozes: FakeSnoozes
    locks: FakeLocks

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.committed = False
        self._work: Tables | None = None

    def __enter__(self) -> Self:
        work = self._work = _copy(self.store.tables)
        self.processed_events = FakeProcessedEvents(work)
        self.conditions = FakeConditions(work)
        self.notifications = FakeNotifications(work)
        self.digests = FakeDigests(work)
        self.acknowledgements = FakeAcknowledgements(work)
        self.snoozes = FakeSnoozes(work)
        self.locks = FakeLocks(self.store)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._work = None

    def commit(self) -> None:
        assert self._work is not None, "commit outside the with-block"
        self.store.tables = _copy(self._work)
        self.store.commits += 1
        self.committed = True

    def database_now(self) -> dt.datetime:
        return self.store.database_now
