"""Kafka message handler for task events: decode, fold in one transaction, or reject."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from pydantic import ValidationError

from services.notifier.usecases.folding import apply_task_event
from services.notifier.usecases.ports import UnitOfWork
from shared.events import UnsupportedEvent, decode_task_event
from shared.kafka import MessagePosition, Outcome, PoisonMessage

log = structlog.get_logger(__name__)


def make_task_event_handler(
    new_uow: Callable[[], UnitOfWork],
    *,
    on_change: Callable[[], None] | None = None,
) -> Callable[[Any], Outcome]:
    """A handler that owns one transaction per message, then asks for an escalation tick."""

    def handle(message: Any) -> Outcome:
        try:
            event = decode_task_event(message.value)
        except (ValueError, ValidationError, UnsupportedEvent) as exc:
            raise PoisonMessage(f"undecodable task event: {exc}") from exc
        position = MessagePosition.of(message)
        with new_uow() as uow:
            folded = apply_task_event(uow, event, position=position)
            uow.commit()
        # After the commit: the tick runs in its own transaction and must see this change.
        if folded.changed and on_change is not None:
            try:
                on_change()
            except Exception as exc:
                # The work is durable; the interval tick will pick the change up.
                log.warning("consumer.tick_request_failed", error=repr(exc))
        return folded.outcome

    return handle
