"""Kafka message handler for progress reports: decode, apply in one transaction, or reject."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from services.tracker.adapters.sql import SqlUnitOfWork
from services.tracker.usecases.reports import apply_report
from shared.clock import Clock
from shared.db import UnitOfWork
from shared.events import ProgressReportSubmitted, decode_report_event
from shared.handlers import Handler, transactional_handler
from shared.kafka import MessagePosition, Outcome


def make_report_handler(session_factory: sessionmaker[Session], clock: Clock) -> Handler:
    """A handler that owns one transaction per message."""

    def apply(
        uow: UnitOfWork, event: ProgressReportSubmitted, position: MessagePosition
    ) -> Outcome:
        return apply_report(SqlUnitOfWork(uow.session), event, position=position, now=clock.now())

    return transactional_handler(
        what="progress report",
        decode=decode_report_event,
        new_uow=lambda: UnitOfWork(session_factory),
        apply=apply,
        committed=lambda outcome: outcome,
    )
