"""What the notifier's use cases need from storage: plain records, repositories, a unit of work.

Nothing here knows SQL. `adapters/sql.py` implements these protocols on Postgres (its locks,
ON CONFLICT, SKIP LOCKED and advisory locks stay there); the unit tests implement them in
memory (tests/unit/notifier/fakes.py).

Records are detached copies of rows: a use case reads them, changes fields, and hands them
back with `save`/`save_all` in the same unit of work; nothing is durable until `commit`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from shared.handlers import Transaction
from shared.processed import ProcessedEvents

if TYPE_CHECKING:
    from services.notifier.access import Scope

# Notification and digest outcomes.
PENDING = "pending"  # planned, not yet delivered (a claimed one has a digest_id)
DELIVERED = "delivered"  # the channel accepted it; delivered_at says when
FAILED = "failed"  # permanently refused, or transient failures outlasted every round
CANCELLED = "cancelled"  # the plan no longer called for it before it was sent
SENDING = "sending"  # a digest composed and awaiting (re)delivery, or leased to a sender


@dataclass
class StoredCondition:
    """The latest task event folded in for one task (`notifier.task_conditions`)."""

    task_code: str
    light: str
    light_since: dt.datetime
    occurred_at: dt.datetime
    event: dict[str, Any]
    updated_at: dt.datetime


@dataclass
class NotificationRecord:
    """One task, level, recipient, channel and window (`notifier.notifications`)."""

    id: uuid.UUID
    notification_id: uuid.UUID
    task_codes: list[str]
    level: int
    level_name: str
    action: str
    sequence: int
    recipient_role: str
    recipient: str
    channel: str
    window_start: dt.datetime
    respond_by: dt.date | None
    subject: str
    body: str
    status: str
    attempts: int
    last_error: str | None
    digest_id: uuid.UUID | None
    policy_fingerprint: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    # Held by quiet hours until this instant; None: it may go at once.
    not_before: dt.datetime | None = None

    @property
    def held(self) -> bool:
        """Pending and waiting for quiet hours to end (see `not_before`)."""
        return self.status == PENDING and self.not_before is not None


@dataclass
class DigestRecord:
    """One message to one recipient on one channel for one window (`notifier.digests`)."""

    id: uuid.UUID
    recipient_role: str
    recipient: str
    channel: str
    window_start: dt.datetime
    level: int
    level_name: str
    task_codes: list[str]
    subject: str
    body: str
    tasks: dict[str, Any]
    status: str
    attempts: int
    rounds: int
    status_code: int | None
    last_error: str | None
    next_attempt_at: dt.datetime | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    failed_at: dt.datetime | None
    lease_owner: str | None
    leased_until: dt.datetime | None


@dataclass
class AcknowledgementRecord:
    """A 签收 of one level of a task (`notifier.acknowledgements`)."""

    id: uuid.UUID
    task_code: str
    level: int
    by_role: str
    by_name: str
    key_id: str
    note: str | None
    acknowledged_at: dt.datetime


@dataclass
class SnoozeRecord:
    """Silence for a task, or one of its levels, until a time (`notifier.snoozes`)."""

    id: uuid.UUID
    task_code: str
    level: int | None
    until: dt.datetime
    reason: str
    by_role: str
    by_name: str
    key_id: str
    created_at: dt.datetime
    cancelled_at: dt.datetime | None = None
    cancelled_by: str | None = None
    cancelled_key_id: str | None = None


@dataclass(frozen=True)
class Delivered:
    """A delivered notification, as much of it as the escalation history needs."""

    task_codes: Sequence[str]
    level: int
    recipient_role: str
    recipient: str
    delivered_at: dt.datetime | None


@dataclass(frozen=True)
class NotificationFilter:
    """Which notifications a listing asks for (every given field must match)."""

    recipient: str | None = None
    task_code: str | None = None
    level: int | None = None
    status: str | None = None
    channel: str | None = None


class Conditions(Protocol):
    """The latest folded task event of each task."""

    def get(self, task_code: str, *, for_update: bool = False) -> StoredCondition | None:
        """One task's condition; `for_update` locks it until the unit of work ends."""
        ...

    def put(self, condition: StoredCondition) -> None:
        """Store a task's condition, new or changed."""
        ...

    def all(self, codes: Sequence[str] | None = None) -> list[StoredCondition]:
        """Every task's condition (or these tasks'), ordered by task code."""
        ...


class Notifications(Protocol):
    """The notification log."""

    def add_new(self, records: Sequence[NotificationRecord]) -> list[tuple[uuid.UUID, int]]:
        """Insert those not stored yet (by id); returns the (id, level) of the ones inserted."""
        ...

    def by_ids(self, ids: Sequence[uuid.UUID]) -> list[NotificationRecord]:
        """The notifications with these ids."""
        ...

    def unclaimed(self, limit: int, *, now: dt.datetime) -> list[NotificationRecord]:
        """Pending notifications no digest has claimed and none holds past `now` (quiet
        hours), locked (skipping rows others hold), ordered by recipient role, recipient,
        channel, window and creation."""
        ...

    def of_digest(
        self, digest_id: uuid.UUID, *, for_update: bool = False
    ) -> list[NotificationRecord]:
        """The notifications a digest carries, ordered by id."""
        ...

    def save_all(self, records: Sequence[NotificationRecord]) -> None:
        """Write back changed records read in this unit of work."""
        ...

    def cancel_unplanned(self, planned: Sequence[uuid.UUID], reason: str) -> int:
        """Cancel pending, unclaimed notifications not among `planned`; returns how many."""
        ...

    def delivered_about(self, codes: Sequence[str]) -> list[Delivered]:
        """Every delivered notification about any of these tasks."""
        ...

    def any_delivered(self, task_code: str, level: int, scope: Scope) -> bool:
        """Whether a notification of this task and level was delivered within `scope`."""
        ...

    def any_about(self, task_code: str, scope: Scope) -> bool:
        """Whether any notification about this task lies within `scope`."""
        ...

    def about_task(self, task_code: str, scope: Scope, limit: int) -> list[NotificationRecord]:
        """Notifications about a task within `scope`, oldest first."""
        ...

    def page(
        self, scope: Scope, wanted: NotificationFilter, *, limit: int, offset: int
    ) -> tuple[list[NotificationRecord], int]:
        """A page of the log within `scope`, newest first, and how many match in all."""
        ...

    def count_pending(self) -> int:
        """Notifications not yet delivered, failed or cancelled."""
        ...


class Digests(Protocol):
    """Composed messages and their delivery state."""

    def add_new(self, records: Sequence[DigestRecord]) -> None:
        """Insert those not stored yet (by id)."""
        ...

    def get(self, digest_id: uuid.UUID) -> DigestRecord | None:
        """One digest."""
        ...

    def lock_next_due(self, now: dt.datetime, database_now: dt.datetime) -> DigestRecord | None:
        """The oldest sending digest whose round has come (`now`) and whose lease, if any, ran
        out (`database_now`), locked, skipping digests another transaction holds."""
        ...

    def lock_leased(self, digest_id: uuid.UUID, owner: str) -> DigestRecord | None:
        """The digest, locked, if `owner` still holds its lease; else None."""
        ...

    def save(self, record: DigestRecord) -> None:
        """Write back a changed record read in this unit of work."""
        ...


class Acknowledgements(Protocol):
    """签收 of task levels."""

    def add(self, record: AcknowledgementRecord) -> None:
        """Store a new acknowledgement."""
        ...

    def of_tasks(self, codes: Sequence[str]) -> list[AcknowledgementRecord]:
        """Acknowledgements of these tasks."""
        ...

    def of_task(self, task_code: str) -> list[AcknowledgementRecord]:
        """Acknowledgements of one task, oldest first."""
        ...


class Snoozes(Protocol):
    """Snoozes of tasks and levels."""

    def add(self, record: SnoozeRecord) -> None:
        """Store a new snooze."""
        ...

    def get(self, snooze_id: uuid.UUID, *, for_update: bool = False) -> SnoozeRecord | None:
        """One snooze; `for_update` locks it until the unit of work ends."""
        ...

    def save(self, record: SnoozeRecord) -> None:
        """Write back a changed record read in this unit of work."""
        ...

    def in_force(self, codes: Sequence[str], now: dt.datetime) -> list[SnoozeRecord]:
        """Snoozes of these tasks that last beyond `now` and were not cancelled."""
        ...

    def of_task(self, task_code: str) -> list[SnoozeRecord]:
        """Snoozes of one task, oldest first."""
        ...


class Locks(Protocol):
    """Serialisation across replicas, held until the unit of work ends."""

    def planning(self) -> None:
        """Wait for, then hold, the lock one escalation tick at a time holds."""
        ...

    def try_composing(self) -> bool:
        """Take the composer's lock if nobody holds it; False if somebody does."""
        ...


class UnitOfWork(Transaction, Protocol):
    """One transaction (`with uow: ...; uow.commit()`) over the notifier's repositories;
    rolled back unless committed."""

    @property
    def processed_events(self) -> ProcessedEvents: ...

    @property
    def conditions(self) -> Conditions: ...

    @property
    def notifications(self) -> Notifications: ...

    @property
    def digests(self) -> Digests: ...

    @property
    def acknowledgements(self) -> Acknowledgements: ...

    @property
    def snoozes(self) -> Snoozes: ...

    @property
    def locks(self) -> Locks: ...

    def database_now(self) -> dt.datetime:
        """The storage's own clock: the same for every replica, used for leases."""
        ...
