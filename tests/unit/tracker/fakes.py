"""Fake repositories and unit of work for the tracker use cases, and builders of tasks.

The fakes keep entities (the ORM classes, used as plain objects) in memory and record what
the use cases stored: timeline entries, outbox events, extension decisions, reports.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from services.tracker import access
from services.tracker.auth import Principal
from services.tracker.orm import (
    ApiKey,
    ExtensionDecision,
    Milestone,
    Report,
    Target,
    Task,
    TaskAction,
    TaskUnit,
    Unit,
)
from services.tracker.usecases.ports import PendingRow
from shared import topics
from shared.clock import SHANGHAI
from shared.kafka import MessagePosition
from shared.vocabulary import DecisionKind, PrincipalRole, TaskStatus

START = dt.datetime(2022, 5, 20, 10, 0, tzinfo=SHANGHAI)
LEAD, CO, OTHER = "市发展改革委", "市统计局", "市民政局"
LEADER, OTHER_LEADER = "张副市长", "李副市长"
UNIT_IDS = {LEAD: 1, CO: 2, OTHER: 3}


def unit(name: str) -> Unit:
    """A unit of the fake catalog."""
    return Unit(id=UNIT_IDS[name], name=name, kind="agency")


_task_ids = itertools.count(1)


def make_task(
    code: str = "T2022-001",
    *,
    lead: Sequence[str] = (LEAD,),
    co: Sequence[str] = (CO,),
    leaders: Sequence[str] = (LEADER,),
    status: str = "in_progress",
    due: dt.date | None = dt.date(2022, 6, 30),
    deadline_kind: str = "complete",
    cadence: str | None = None,
    milestones: Sequence[str] = (),
    targets: Sequence[str] = (),
    **fields: Any,
) -> Task:
    """A stored-looking task: every column a use case reads has its value."""
    task = Task(
        id=next(_task_ids),
        code=code,
        section="一、稳定经济",
        item="1",
        text=f"任务{code}",
        leaders=list(leaders),
        deadline_text="6月底前",
        deadline_kind=deadline_kind,
        start_date=dt.date(2022, 1, 1),
        due_date=due,
        extended_due_date=None,
        summary_due=None,
        cadence=cadence,
        status=status,
        percent=0,
        light="green",
        light_reasons=[],
        light_changed_at=None,
        days_overdue=0,
        next_evaluation_at=None,
        last_report_at=None,
        last_report_has_blockers=False,
        reported_periods=[],
        red_since=None,
        report_due_at=None,
        pending_extension_due=None,
        pending_extension_asked_at=None,
        pending_extension_reason=None,
        return_comment=None,
        completion_requested_at=None,
        closed_at=None,
        announced=None,
        created_at=dt.datetime(2022, 1, 1, tzinfo=SHANGHAI),
    )
    roles = [(name, "lead") for name in lead] + [(name, "co") for name in co if name not in lead]
    for position, (name, role) in enumerate(roles):
        member = unit(name)
        task.assignments.append(
            TaskUnit(
                unit_id=member.id, unit=member, role=role, position=position, reported_periods=[]
            )
        )
    for position, text in enumerate(milestones):
        task.milestones.append(Milestone(position=position, text=text, due_date=due))
    for position, indicator in enumerate(targets):
        task.targets.append(
            Target(position=position, indicator=indicator, value=100, unit="个", actual=None)
        )
    for name, value in fields.items():
        setattr(task, name, value)
    return task


def principal(role: str, *, unit_name: str | None = None, leader: str | None = None) -> Principal:
    """A caller: a unit key names its unit, a leader key its leader."""
    return Principal(
        key_id=f"key{role}{unit_name or leader or ''}"[:40],
        role=PrincipalRole(role),
        unit=unit_name,
        unit_id=UNIT_IDS[unit_name] if unit_name else None,
        leader=leader,
    )


class FakeTasks:
    """Tasks by code; `held` are locked by another transaction (the scan skips them)."""

    def __init__(self, tasks: Sequence[Task] = ()) -> None:
        self.by_code = {t.code: t for t in tasks}
        self.held: set[str] = set()
        self.locked: list[str] = []

    def get_for_update(self, code: str) -> Task | None:
        self.locked.append(code)
        return self.by_code.get(code)

    def due_for_evaluation(self, now: dt.datetime, *, limit: int) -> Sequence[Task]:
        due = [
            t
            for t in self.by_code.values()
            if t.next_evaluation_at is not None
            and t.next_evaluation_at <= now
            and t.code not in self.held
        ]
        due.sort(key=lambda t: t.next_evaluation_at or now)
        batch = due[:limit]
        self.locked.extend(t.code for t in batch)
        return batch

    def leader_known(self, leader: str) -> bool:
        return any(leader in t.leaders for t in self.by_code.values())


class FakeUnits:
    def __init__(self, names: Sequence[str] = tuple(UNIT_IDS)) -> None:
        self.by = {name: unit(name) for name in names}

    def by_name(self, name: str) -> Unit | None:
        return self.by.get(name)


class FakeProcessedEvents:
    def __init__(self) -> None:
        self.seen: dict[uuid.UUID, MessagePosition] = {}

    def mark(self, event_id: uuid.UUID, position: MessagePosition) -> bool:
        if event_id in self.seen:
            return False
        self.seen[event_id] = position
        return True


class FakeReports:
    def __init__(self) -> None:
        self.stored: list[Report] = []
        self._ids = itertools.count(1)

    def add(self, report: Report) -> None:
        if report.id is None:
            report.id = next(self._ids)
        self.stored.append(report)

    def latest_lead(self, task_id: int) -> Report | None:
        mine = [
            r
            for r in self.stored
            if r.task_id == task_id and r.role == "lead" and r.returned_at is None
        ]
        return max(mine, key=lambda r: r.submitted_at, default=None)

    def parts_among(self, task_id: int, event_ids: Sequence[uuid.UUID]) -> Sequence[Report]:
        wanted = set(event_ids)
        return [
            r
            for r in self.stored
            if r.task_id == task_id and r.role == "co" and r.event_id in wanted
        ]


class FakeTimeline:
    def __init__(self) -> None:
        self.entries: list[TaskAction] = []

    def add(self, action: TaskAction) -> None:
        self.entries.append(action)

    def kinds(self) -> list[str]:
        return [e.action for e in self.entries]


@dataclass
class Queued:
    """One outbox entry, its event as the JSON that would be published."""

    topic: str
    key: str
    event: dict[str, Any] | None


class FakeOutbox:
    def __init__(self) -> None:
        self.queued: list[Queued] = []

    def add(self, *, topic: str, key: str, event: BaseModel | None) -> None:
        body = json.loads(event.model_dump_json()) if event is not None else None
        self.queued.append(Queued(topic, key, body))

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return [
            q.event
            for q in self.queued
            if q.topic == topics.TASK_EVENTS and q.event and q.event["event_type"] == event_type
        ]

    def directory(self) -> list[Queued]:
        return [q for q in self.queued if q.topic == topics.DIRECTORY]


class FakeExtensionDecisions:
    def __init__(self) -> None:
        self.decided: list[ExtensionDecision] = []

    def add(self, decision: ExtensionDecision) -> None:
        self.decided.append(decision)


class FakeApiKeys:
    def __init__(self) -> None:
        self.by_id: dict[str, ApiKey] = {}
        self._ids = itertools.count(1)

    def add(self, key: ApiKey) -> None:
        key.id = next(self._ids)
        self.by_id[key.key_id] = key

    def get_for_update(self, key_id: str) -> ApiKey | None:
        return self.by_id.get(key_id)


class FakeDecisions:
    """`ports.Decisions` over the fake tasks and reports, filtered by `access.may_see`."""

    def __init__(self, tasks: FakeTasks, reports: FakeReports) -> None:
        self.tasks = tasks
        self.reports = reports

    def pending(
        self,
        principal: Principal,
        *,
        after: tuple[dt.datetime, int, int] | None,
        limit: int,
    ) -> Sequence[PendingRow]:
        rows: list[PendingRow] = []
        for task in self.tasks.by_code.values():
            if task.status == TaskStatus.CLOSED or not access.may_see(principal, task):
                continue
            leads = [r for r in self.reports.stored if r.task_id == task.id and r.role == "lead"]
            latest = max(leads, key=lambda r: (r.submitted_at, r.id or 0), default=None)
            if latest is not None and latest.returned_at is None and latest.accepted_at is None:
                rows.append(
                    PendingRow(
                        DecisionKind.REPORT_REVIEW, latest.submitted_at, 0, latest.id, task, latest
                    )
                )
            if task.pending_extension_due and task.pending_extension_asked_at:
                rows.append(
                    PendingRow(
                        DecisionKind.EXTENSION_REQUEST,
                        task.pending_extension_asked_at,
                        1,
                        task.id,
                        task,
                    )
                )
            if task.status == TaskStatus.COMPLETION_REQUESTED and task.completion_requested_at:
                rows.append(
                    PendingRow(
                        DecisionKind.COMPLETION_REQUEST,
                        task.completion_requested_at,
                        2,
                        task.id,
                        task,
                    )
                )
        rows.sort(key=lambda r: (r.since, r.rank, r.ref_id))
        if after is not None:
            rows = [r for r in rows if (r.since, r.rank, r.ref_id) > after]
        return rows[:limit]


@dataclass
class FakeUnitOfWork:
    """`ports.UnitOfWork` in memory."""

    tasks: FakeTasks = field(default_factory=FakeTasks)
    units: FakeUnits = field(default_factory=FakeUnits)
    processed: FakeProcessedEvents = field(default_factory=FakeProcessedEvents)
    reports: FakeReports = field(default_factory=FakeReports)
    timeline: FakeTimeline = field(default_factory=FakeTimeline)
    outbox: FakeOutbox = field(default_factory=FakeOutbox)
    extensions: FakeExtensionDecisions = field(default_factory=FakeExtensionDecisions)
    keys: FakeApiKeys = field(default_factory=FakeApiKeys)
    flushes: int = 0

    @property
    def decisions(self) -> FakeDecisions:
        return FakeDecisions(self.tasks, self.reports)

    def flush(self) -> None:
        self.flushes += 1


def uow_with(*tasks: Task) -> FakeUnitOfWork:
    """A fake unit of work over these tasks and the three units."""
    return FakeUnitOfWork(tasks=FakeTasks(tasks))
