"""The small ports the use cases load and store through; `adapters.sql` implements them.

Entities are the ORM classes used as plain objects: a fake repository hands out `Task`s
built in memory, the SQL one hands out rows of the caller's session.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from services.tracker.orm import ApiKey, ExtensionDecision, Report, Task, TaskAction, Unit
from shared.processed import ProcessedEvents

if TYPE_CHECKING:
    from services.tracker.auth import Principal


class Tasks(Protocol):
    """Tasks, each decision on one starting with its lock."""

    def get_for_update(self, code: str) -> Task | None:
        """The task locked until the transaction ends, read as of the lock; None if unknown."""
        ...

    def due_for_evaluation(self, now: dt.datetime, *, limit: int) -> Sequence[Task]:
        """Up to `limit` tasks whose next evaluation is due, earliest first, each locked;
        tasks another transaction holds are skipped, not waited for."""
        ...

    def leader_known(self, leader: str) -> bool:
        """Whether some task names this supervising leader."""
        ...


class Units(Protocol):
    """Responsible units."""

    def by_name(self, name: str) -> Unit | None:
        """The unit of this name, if the catalog holds it."""
        ...


class Reports(Protocol):
    """The append-only report history."""

    def add(self, report: Report) -> None:
        """Store a report."""
        ...

    def latest_lead(self, task_id: int) -> Report | None:
        """The lead unit's latest report on the task that has not been returned."""
        ...

    def parts_among(self, task_id: int, event_ids: Sequence[uuid.UUID]) -> Sequence[Report]:
        """Those of `event_ids` that are co-unit parts (role co) stored for this task."""
        ...


@dataclass(frozen=True)
class PendingRow:
    """One decision awaiting the office, as stored: what kind, since when, about which task.

    `rank` orders kinds sharing an instant (0 report review, 1 extension, 2 completion) and
    `ref_id` is the report's id (a review) or the task's (a request): with `since` they are
    the listing's order and its cursor.
    """

    kind: str
    since: dt.datetime
    rank: int
    ref_id: int
    task: Task
    report: Report | None = None


class Decisions(Protocol):
    """What awaits the office's decision, oldest first."""

    def pending(
        self,
        principal: Principal,
        *,
        after: tuple[dt.datetime, int, int] | None,
        limit: int,
    ) -> Sequence[PendingRow]:
        """Up to `limit` pending decisions on tasks `principal` may see (`access.visible_tasks`
        in SQL, `access.may_see` in memory), ordered by (since, rank, ref_id), after `after`:
        the latest lead report of each task not closed, if neither returned nor accepted; a
        pending extension request; a completion request (申请销号) awaiting 销号."""
        ...


class Timeline(Protocol):
    """A task's timeline (and audit trail of its workflow)."""

    def add(self, action: TaskAction) -> None:
        """Record an entry."""
        ...


class Outbox(Protocol):
    """Events published after the transaction commits."""

    def add(self, *, topic: str, key: str, event: BaseModel | None) -> None:
        """Queue an event in the caller's transaction; None queues a tombstone."""
        ...


class ExtensionDecisions(Protocol):
    """How extension requests ended."""

    def add(self, decision: ExtensionDecision) -> None:
        """Record a decision."""
        ...


class ApiKeys(Protocol):
    """API keys (only their hashes)."""

    def add(self, key: ApiKey) -> None:
        """Store a new key."""
        ...

    def get_for_update(self, key_id: str) -> ApiKey | None:
        """The key locked until the transaction ends, read as of the lock; None if unknown."""
        ...


class UnitOfWork(Protocol):
    """What one use case works with, inside the caller's transaction."""

    @property
    def tasks(self) -> Tasks:
        """The tasks repository."""
        ...

    @property
    def units(self) -> Units:
        """The units repository."""
        ...

    @property
    def processed(self) -> ProcessedEvents:
        """The processed repository."""
        ...

    @property
    def reports(self) -> Reports:
        """The reports repository."""
        ...

    @property
    def timeline(self) -> Timeline:
        """The timeline repository."""
        ...

    @property
    def outbox(self) -> Outbox:
        """The outbox repository."""
        ...

    @property
    def extensions(self) -> ExtensionDecisions:
        """The extensions repository."""
        ...

    @property
    def keys(self) -> ApiKeys:
        """The keys repository."""
        ...

    @property
    def decisions(self) -> Decisions:
        """What awaits the office's decision."""
        ...

    def flush(self) -> None:
        """Write what is pending so far (ids assigned), without committing."""
        ...
