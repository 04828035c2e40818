"""Kafka message handler for task events: decode, fold in one transaction, or reject."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from services.notifier.usecases.folding import Folded, apply_task_event
from services.notifier.usecases.ports import UnitOfWork
from shared.events import TaskEvent, decode_task_event
from shared.handlers import Handler, transactional_handler
from shared.kafka import MessagePosition, Outcome

log = structlog.get_logger(__name__)


def make_task_event_handler(
    new_uow: Callable[[], UnitOfWork],
    *,
    on_change: Callable[[], None] | None = None,
) -> Handler:
    """A handler that owns one transaction per message, then asks for an escalation tick."""

    def apply(uow: UnitOfWork, event: TaskEvent, position: MessagePosition) -> Folded:
        return apply_task_event(uow, event, position=position)

    def committed(folded: Folded) -> Outcome:
        # After the commit: the tick runs in its own transaction and must see this change.
        if folded.changed and on_change is not None:
            try:
                on_change()
            except Exception as exc:
                # The work is durable; the interval tick will pick the change up.
                log.warning("consumer.tick_request_failed", error=repr(exc))
        return folded.outcome

    return transactional_handler(
        what="task event",
        decode=decode_task_event,
        new_uow=new_uow,
        apply=apply,
        committed=committed,
    )
