"""Write a parsed task-division document into the catalog: insert, update, and say what."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from services.tracker.adapters.sql import SqlOutbox
from services.tracker.catalog.diff import diff_catalog
from services.tracker.catalog.model import (
    Deadline,
    ParsedDocument,
    ParsedTask,
    decimal_to_json,
)
from services.tracker.catalog.model import Milestone as ParsedMilestone
from services.tracker.catalog.model import PlanGoal as ParsedGoal
from services.tracker.catalog.model import Target as ParsedTarget
from services.tracker.catalog.units import unit_kind
from services.tracker.orm import Document, Milestone, PlanGoal, Target, Task, TaskUnit, Unit
from services.tracker.usecases.directory import publish_assignment
from shared.locks import AdvisoryLock
from shared.vocabulary import Cadence, DeadlineKind, Light, TargetDirection, TaskStatus, UnitRole

# One import at a time across every replica: pg_advisory_xact_lock on this key .
# Imports share the unit directory, so two documents naming the same new unit serialise too.
IMPORT_LOCK_ID = int(AdvisoryLock.CATALOG_IMPORT)


@dataclass
class ImportResult:
    """What an import did."""

    document_code: str
    added: list[str] = field(default_factory=list)
    changed: list[tuple[str, list[str]]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    goals_added: int = 0
    units_created: list[str] = field(default_factory=list)

    def to_json_dict(self) -> dict[str, Any]:
        """JSON form for the API and `duban import --json`."""
        return {
            "document_code": self.document_code,
            "added": self.added,
            "changed": [{"code": code, "fields": fields} for code, fields in self.changed],
            "unchanged": len(self.unchanged),
            "missing": self.missing,
            "goals_added": self.goals_added,
            "units_created": self.units_created,
        }


def _as_parsed(task: Task) -> ParsedTask:
    """A stored task as the parser would have read it, so the catalog diff compares the two
    in the one shape `task_to_json_dict` defines."""
    return ParsedTask(
        code=task.code,
        section=task.section,
        item=task.item or "",
        text=task.text,
        text_original=task.text_original or task.text,
        lead_units=tuple(task.lead_units),
        co_units=tuple(task.co_units),
        leaders=tuple(task.leaders),
        deadline=Deadline(
            text=task.deadline_text,
            kind=DeadlineKind(task.deadline_kind),
            due=task.due_date,
            # Stored from a parsed deadline, so it is one of the cadences.
            cadence=Cadence(task.cadence) if task.cadence is not None else None,
            summary_due=task.summary_due,
            report_due_day=task.report_due_day,
        ),
        milestones=tuple(ParsedMilestone(text=m.text, due=m.due_date) for m in task.milestones),
        targets=tuple(
            ParsedTarget(
                indicator=t.indicator,
                value=t.value,
                unit=t.unit,
                direction=TargetDirection(t.direction),
            )
            for t in task.targets
        ),
        line=task.source_line or 0,
    )


def _as_parsed_goal(goal: PlanGoal) -> ParsedGoal:
    return ParsedGoal(
        code=goal.code,
        section=goal.section,
        item=goal.item,
        text=goal.text,
        text_original=goal.text_original,
        line=0,
        title=goal.title,
        start_year=goal.start_year,
        end_year=goal.end_year,
    )


class _Units:
    """Finds or creates units by name within one import."""

    def __init__(self, session: Session, result: ImportResult) -> None:
        self.session = session
        self.result = result
        self.cache = {u.name: u for u in session.execute(select(Unit)).scalars()}

    def get(self, name: str) -> Unit:
        unit = self.cache.get(name)
        if unit is None:
            unit = Unit(name=name, kind=unit_kind(name))
            self.session.add(unit)
            self.session.flush()
            self.cache[name] = unit
            self.result.units_created.append(name)
        return unit


def _apply(task: Task, parsed: ParsedTask, units: _Units, year: int) -> None:
    task.section = parsed.section
    task.item = parsed.item
    task.text = parsed.text
    task.text_original = parsed.text_original
    task.source_line = parsed.line
    task.leaders = list(parsed.leaders)
    task.deadline_text = parsed.deadline.text
    task.deadline_kind = parsed.deadline.kind
    task.due_date = parsed.deadline.due
    task.cadence = parsed.deadline.cadence
    task.summary_due = parsed.deadline.summary_due
    task.report_due_day = parsed.deadline.report_due_day
    task.start_date = dt.date(year, 1, 1)
    wanted = [(units.get(n), UnitRole.LEAD) for n in parsed.lead_units]
    wanted += [(units.get(n), UnitRole.CO) for n in parsed.co_units if n not in parsed.lead_units]
    if [(a.unit_id, a.role) for a in task.assignments] != [(u.id, r) for u, r in wanted]:
        task.assignments.clear()
        units.session.flush()
        task.assignments.extend(
            TaskUnit(unit_id=u.id, unit=u, role=role, position=i)
            for i, (u, role) in enumerate(wanted)
        )
    if [(m.text, m.due_date) for m in task.milestones] != [
        (m.text, m.due) for m in parsed.milestones
    ]:
        done = {m.text: m.done_at for m in task.milestones}
        task.milestones[:] = [
            Milestone(position=i, text=m.text, due_date=m.due, done_at=done.get(m.text))
            for i, m in enumerate(parsed.milestones)
        ]
    stored_targets = [
        (t.indicator, decimal_to_json(t.value), t.unit, t.direction) for t in task.targets
    ]
    parsed_targets = [
        (t.indicator, decimal_to_json(t.value), t.unit, t.direction) for t in parsed.targets
    ]
    if stored_targets != parsed_targets:
        actual = {t.indicator: t.actual for t in task.targets}
        task.targets[:] = [
            Target(
                position=i,
                indicator=t.indicator,
                value=t.value,
                unit=t.unit,
                direction=t.direction,
                actual=actual.get(t.indicator),
            )
            for i, t in enumerate(parsed.targets)
        ]


def import_document(session: Session, parsed: ParsedDocument, *, now: dt.datetime) -> ImportResult:
    """Insert new tasks, update changed ones (reports stay attached), report the rest.

    Lock, then decide: imports run one at a time, and the document's stored tasks are locked
    before they are compared, so a workflow action on one of them waits for the import (or
    the import for it) and the assignment announced for a task carries its current status.
    """
    session.execute(select(func.pg_advisory_xact_lock(IMPORT_LOCK_ID)))
    result = ImportResult(document_code=parsed.code)
    document = session.execute(
        select(Document).where(Document.code == parsed.code)
    ).scalar_one_or_none()
    if document is None:
        document = Document(
            code=parsed.code,
            imported_at=now,
            title=parsed.title,
            year=parsed.year,
            format=parsed.format,
            kind=parsed.kind,
            updated_at=now,
        )
        session.add(document)
        session.flush()
    document.title, document.year, document.format = parsed.title, parsed.year, parsed.format
    document.kind, document.updated_at = parsed.kind, now

    units = _Units(session, result)
    tasks = {
        t.code: t
        for t in session.execute(
            select(Task)
            .where(Task.document_id == document.id)
            .order_by(Task.id)
            .with_for_update(of=Task)
            .execution_options(populate_existing=True)
        ).scalars()
    }
    goals = {
        g.code: g
        for g in session.execute(
            select(PlanGoal).where(PlanGoal.document_id == document.id)
        ).scalars()
    }
    stored: dict[str, ParsedTask | ParsedGoal] = {code: _as_parsed(t) for code, t in tasks.items()}
    stored.update({code: _as_parsed_goal(g) for code, g in goals.items()})
    diff = diff_catalog(stored, parsed)
    touched = set(diff.added) | {code for code, _ in diff.changed}
    result.added = [code for code in diff.added if code not in goals]
    result.changed = [(code, list(fields)) for code, fields in diff.changed]
    result.unchanged = diff.unchanged
    # Entries no longer in the document keep their history; the office decides what to do.
    result.missing = sorted(diff.removed)

    for parsed_task in parsed.tasks:
        if parsed_task.code not in touched:
            continue
        task = tasks.get(parsed_task.code)
        if task is None:
            task = Task(
                code=parsed_task.code,
                document_id=document.id,
                status=TaskStatus.NOT_STARTED,
                percent=0,
                light=Light.GREEN,
                light_reasons=[],
                days_overdue=0,
                reported_periods=[],
            )
            session.add(task)
        _apply(task, parsed_task, units, parsed.year)
        # Evaluate at the next scan tick, and tell intake who may report on it.
        task.next_evaluation_at = now
        session.flush()
        publish_assignment(SqlOutbox(session), task, now=now)

    if len(result.added) > 100:
        # Fresh statistics keep the scan on its partial index instead of a sequential scan.
        session.execute(text("ANALYZE tracker.tasks"))

    for goal in parsed.goals:
        if goal.code not in touched:
            continue
        row = goals.get(goal.code)
        if row is None:
            row = PlanGoal(code=goal.code, document_id=document.id)
            session.add(row)
            result.goals_added += 1
        row.section, row.item, row.title = goal.section, goal.item, goal.title
        row.text, row.text_original = goal.text, goal.text_original
        row.start_year, row.end_year = goal.start_year, goal.end_year
    return result


def summarise(parsed: ParsedDocument) -> dict[str, Counter[str]]:
    """Counts per section, per lead unit and per deadline kind, for the human summary."""
    return {
        "section": Counter(t.section or "（无）" for t in parsed.tasks),
        "lead_unit": Counter(u for t in parsed.tasks for u in t.lead_units or ("（无）",)),
        "deadline_kind": Counter(t.deadline.kind for t in parsed.tasks),
    }
