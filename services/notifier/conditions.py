"""The engine's task conditions: from stored task events, and to and from digest snapshots."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from services.notifier.escalation.engine import MissingPart, TaskCondition
from services.notifier.escalation.engine import is_stopped as is_stopped
from shared.clock import end_of_day, shanghai_date
from shared.events import TaskConditionChanged
from shared.vocabulary import Light, TaskStatus

_TIMES = ("red_since", "yellow_since", "report_due_at", "last_report_at", "due_at")
_TUPLES = ("reasons_zh", "lead_units", "co_units", "leaders")


def condition_at(event: TaskConditionChanged, *, now: dt.datetime) -> TaskCondition:
    """The engine's view of a task at `now`, from the latest event the tracker sent about it.

    The tracker does not re-send a task every day it stays red, so day counts are derived
    here from the deadline; the light, its start and the owed report come from the event.
    """
    today = shanghai_date(now)
    days_overdue = 0
    if event.due is not None and event.status is not TaskStatus.CLOSED and today > event.due:
        days_overdue = (today - event.due).days
    elif event.light is Light.RED:
        # Red for a missing report, not for the deadline: keep what the tracker said.
        days_overdue = event.days_overdue
    extended = (
        event.due is not None
        and event.original_due is not None
        and event.due != event.original_due
        and today <= event.due
    )
    red_since = event.red_since
    if event.light is Light.RED and red_since is None:
        red_since = event.light_since
    return TaskCondition(
        task_id=event.task_code,
        task_title=event.title,
        light=event.light,
        status=event.status,
        reasons_zh=tuple(event.reasons),
        days_overdue=days_overdue,
        red_since=red_since if event.light is Light.RED else None,
        yellow_since=event.light_since if event.light is Light.YELLOW else None,
        report_due_at=event.report_due_at,
        lead_units=tuple(event.lead_units),
        co_units=tuple(event.co_units),
        leaders=tuple(event.leaders),
        extended=extended,
        last_report_at=event.last_report_at,
        due_at=end_of_day(event.due) if event.due is not None else None,
        missing_parts=tuple(
            MissingPart(unit=p.unit, period=p.period, due_at=p.due_at) for p in event.missing_parts
        ),
    )


def condition_to_json(condition: TaskCondition) -> dict[str, Any]:
    """A JSON-ready snapshot of a condition (for a digest, so resends render the same)."""
    # Shallow on purpose: asdict deep-copies, and every field here is immutable.
    data = {f.name: getattr(condition, f.name) for f in dataclasses.fields(condition)}
    for name in _TIMES:
        value = data[name]
        data[name] = value.isoformat() if value is not None else None
    for name in _TUPLES:
        data[name] = list(data[name])
    data["missing_parts"] = [
        {"unit": p.unit, "period": p.period, "due_at": p.due_at.isoformat()}
        for p in condition.missing_parts
    ]
    return data


def condition_from_json(data: Mapping[str, Any]) -> TaskCondition:
    """The condition a snapshot was taken from."""
    fields = dict(data)
    for name in _TIMES:
        value = fields.get(name)
        fields[name] = dt.datetime.fromisoformat(value) if value is not None else None
    for name in _TUPLES:
        fields[name] = tuple(fields.get(name) or ())
    # Snapshots taken before co-units owed parts have none.
    fields["missing_parts"] = tuple(
        MissingPart(
            unit=p["unit"], period=p["period"], due_at=dt.datetime.fromisoformat(p["due_at"])
        )
        for p in fields.get("missing_parts") or ()
    )
    return TaskCondition(**fields)
