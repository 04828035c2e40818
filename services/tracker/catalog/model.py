"""The importer's output: what one task-division document says, as frozen values.

`ParsedDocument.to_json_dict()` is the `duban import --dry-run --json` shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from shared.vocabulary import Cadence, DeadlineKind, TargetDirection

DocumentKind = Literal["table", "inline", "district_plan", "five_year_plan"]


@dataclass(frozen=True)
class Deadline:
    """A read deadline phrase (完成时限).

    `due` is a Shanghai calendar date; `at` is set only for events that name an instant;
    `summary_due` is the year-end summary owed by a year-long continuous task;
    `report_due_day` the day of the month reports are due by when the phrase says so
    (每月5日前报送). `working_days` is N for a phrase `N个工作日内`, which has no date until
    the office counts it from a start (`shared.workcal`).
    """

    text: str
    kind: DeadlineKind
    due: date | None = None
    cadence: Cadence | None = None
    summary_due: date | None = None
    at: datetime | None = None
    report_due_day: int | None = None
    working_days: int | None = None

    @property
    def readable(self) -> bool:
        """False when the phrase could not be read and was kept verbatim."""
        if self.kind is DeadlineKind.UNKNOWN:
            return False
        return not (
            self.kind in (DeadlineKind.COMPLETE, DeadlineKind.PROGRESS) and self.due is None
        )


NO_DEADLINE = Deadline(text="", kind=DeadlineKind.UNKNOWN)


@dataclass(frozen=True)
class Milestone:
    """A part of a task with its own due date (the `其中…` parts of a deadline)."""

    text: str
    due: date | None


@dataclass(frozen=True)
class Target:
    """A numeric target named in the task text (新增就业4万人 → 新增就业, 40000, 人)."""

    indicator: str
    value: Decimal
    unit: str
    qualifier: str = ""  # 以上 / 以内 / 左右 … as written; not part of the JSON shape
    direction: TargetDirection = TargetDirection.AT_LEAST


@dataclass(frozen=True)
class ParsedTask:
    """One task: a table row, or one responsibility clause, or one plan paragraph."""

    code: str
    section: str | None
    item: str
    text: str
    text_original: str
    lead_units: tuple[str, ...]
    co_units: tuple[str, ...]
    leaders: tuple[str, ...]
    deadline: Deadline
    milestones: tuple[Milestone, ...]
    targets: tuple[Target, ...]
    line: int
    more_units: bool = False  # the clause said 等: more units than those named may take part


@dataclass(frozen=True)
class PlanGoal:
    """A numbered goal of a five-year plan that annual tasks can be linked to."""

    code: str
    section: str | None
    item: str
    text: str
    text_original: str
    line: int
    title: str = ""
    start_year: int | None = None
    end_year: int | None = None


@dataclass(frozen=True)
class Warning:
    """Something the importer could not read, with the line it is on (None: whole document)."""

    line: int | None
    message: str


@dataclass(frozen=True)
class ParsedDocument:
    """Everything read from one document."""

    title: str
    year: int
    format: str
    tasks: tuple[ParsedTask, ...]
    goals: tuple[PlanGoal, ...] = ()
    warnings: tuple[Warning, ...] = ()
    kind: DocumentKind = "table"
    code: str = ""
    title_original: str = ""
    period: tuple[int, int] | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """The dry-run JSON shape; "goals" appears only when the document has plan goals."""
        result: dict[str, Any] = {
            "document": {"title": self.title, "year": self.year, "format": self.format},
            "tasks": [task_to_json_dict(task) for task in self.tasks],
            "warnings": [{"line": w.line, "message": w.message} for w in self.warnings],
        }
        if self.goals:
            result["goals"] = [goal_to_json_dict(goal) for goal in self.goals]
        return result


def decimal_to_json(value: Decimal) -> int | float:
    """Render a target value as a JSON number: integral values as int."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def deadline_to_json_dict(deadline: Deadline) -> dict[str, Any]:
    """The deadline part of the dry-run JSON."""
    return {
        "text": deadline.text,
        "kind": deadline.kind,
        "due": _iso(deadline.due),
        "cadence": deadline.cadence,
        **({"report_due_day": deadline.report_due_day} if deadline.report_due_day else {}),
    }


def task_to_json_dict(task: ParsedTask) -> dict[str, Any]:
    """One task in the dry-run JSON shape."""
    return {
        "code": task.code,
        "section": task.section,
        "item": task.item,
        "text": task.text,
        "lead_units": list(task.lead_units),
        "co_units": list(task.co_units),
        "leaders": list(task.leaders),
        "deadline": deadline_to_json_dict(task.deadline),
        "milestones": [{"text": m.text, "due": _iso(m.due)} for m in task.milestones],
        "targets": [
            {
                "indicator": t.indicator,
                "value": decimal_to_json(t.value),
                "unit": t.unit,
                "direction": t.direction,
            }
            for t in task.targets
        ],
    }


def goal_to_json_dict(goal: PlanGoal) -> dict[str, Any]:
    """One plan goal in the dry-run JSON "goals" list."""
    return {
        "code": goal.code,
        "section": goal.section,
        "item": goal.item,
        "title": goal.title,
        "text": goal.text,
        "start_year": goal.start_year,
        "end_year": goal.end_year,
    }
