"""Kafka message handler for task events: decode, fold in one transaction, or reject."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from services.notifier.service import MessagePosition, apply_task_event
from shared.clock import Clock
from shared.db import UnitOfWork
from shared.events import TaskConditionChanged, UnsupportedEvent, decode_task_event
from shared.kafka import Outcome, PoisonMessage


def make_task_event_handler(
    session_factory: sessionmaker[Session], clock: Clock, *, supervising_office: str
) -> Callable[[Any], Outcome]:
    """A handler that owns one transaction per message."""

    def handle(message: Any) -> Outcome:
        try:
            event = decode_task_event(message.value)
        except (ValueError, ValidationError, UnsupportedEvent) as exc:
            raise PoisonMessage(f"undecodable task event: {exc}") from exc
        if not isinstance(event, TaskConditionChanged):
            # Office actions reach the notifier through the condition change they cause.
            return Outcome.APPLIED
        position = MessagePosition(message.topic, message.partition, message.offset)
        with UnitOfWork(session_factory) as uow:
            outcome = apply_task_event(
                uow.session,
                event,
                position=position,
                now=clock.now(),
                supervising_office=supervising_office,
            )
            uow.commit()
        return outcome

    return handle
