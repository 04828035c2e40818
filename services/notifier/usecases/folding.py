"""Task events in, engine conditions out: folding one event, and reading the folded ones."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from services.notifier.conditions import condition_at
from services.notifier.escalation.engine import TaskCondition
from services.notifier.usecases.ports import Conditions, StoredCondition, UnitOfWork
from shared.events import TaskConditionChanged
from shared.kafka import MessagePosition, Outcome

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Folded:
    """What folding one task event did."""

    outcome: Outcome
    changed: bool


def apply_task_event(uow: UnitOfWork, event: Any, *, position: MessagePosition) -> Folded:
    """Fold a task event into the task's condition; planning happens in the next tick."""
    if not isinstance(event, TaskConditionChanged):
        # Other task events (actions for the timeline) are followed by their own
        # condition change when they matter to escalation.
        return Folded(Outcome.APPLIED, changed=False)
    if not uow.processed_events.mark(event.event_id, position):
        return Folded(Outcome.DUPLICATE, changed=False)
    condition = uow.conditions.get(event.task_code, for_update=True)
    if condition is not None and condition.occurred_at > event.occurred_at:
        return Folded(Outcome.APPLIED, changed=False)  # an older event arriving late
    uow.conditions.put(
        StoredCondition(
            task_code=event.task_code,
            light=event.light,
            light_since=event.light_since,
            occurred_at=event.occurred_at,
            event=event.model_dump(mode="json"),
            # Bookkeeping in wall time: when this replica folded it, not the service clock.
            updated_at=dt.datetime.now(dt.UTC),
        )
    )
    return Folded(Outcome.APPLIED, changed=True)


def current_conditions(
    conditions: Conditions, *, now: dt.datetime, codes: Sequence[str] | None = None
) -> tuple[list[TaskCondition], list[str]]:
    """The engine's conditions at `now`, and the codes of tasks whose stored event is unusable."""
    found: list[TaskCondition] = []
    unreadable: list[str] = []
    for stored in conditions.all(codes):
        try:
            event = TaskConditionChanged.model_validate(stored.event)
            found.append(condition_at(event, now=now))
        except (ValidationError, ValueError) as exc:
            # One bad row must not stop escalation for every other task.
            unreadable.append(stored.task_code)
            log.error("escalation.condition_unreadable", task=stored.task_code, error=str(exc))
    return found, unreadable
