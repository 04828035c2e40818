"""Kafka message handler for progress reports: decode, apply in one transaction, or reject."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from services.tracker.adapters.sql import SqlUnitOfWork
from services.tracker.usecases.reports import apply_report
from shared.clock import Clock
from shared.db import UnitOfWork
from shared.events import UnsupportedEvent, decode_report_event
from shared.kafka import MessagePosition, Outcome, PoisonMessage


def make_report_handler(
    session_factory: sessionmaker[Session], clock: Clock
) -> Callable[[Any], Outcome]:
    """A handler that owns one transaction per message."""

    def handle(message: Any) -> Outcome:
        try:
            event = decode_report_event(message.value)
        except (ValueError, ValidationError, UnsupportedEvent) as exc:
            raise PoisonMessage(f"undecodable progress report: {exc}") from exc
        position = MessagePosition.of(message)
        with UnitOfWork(session_factory) as uow:
            outcome = apply_report(
                SqlUnitOfWork(uow.session), event, position=position, now=clock.now()
            )
            uow.commit()
        return outcome

    return handle
