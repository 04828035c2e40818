"""Events a service has already applied, so that a redelivered event is a no-op.

Each consuming service keeps its own table (`tracker.processed_events`,
`notifier.processed_events`) on its own declarative base; the columns, the port and the
`ON CONFLICT DO NOTHING` insert are defined once, here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Protocol

from sqlalchemy import BigInteger, Integer, String, func
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from shared.db import Timestamp
from shared.kafka import MessagePosition


class ProcessedEventColumns:
    """Mixin for a service's `processed_events` table: `class Row(ProcessedEventColumns, Base)`."""

    __tablename__ = "processed_events"

    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    topic: Mapped[str] = mapped_column(String(200))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    processed_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())


class ProcessedEvents(Protocol):
    """The use cases' port: ids of events already applied."""

    def mark(self, event_id: uuid.UUID, position: MessagePosition) -> bool:
        """Record the event as processed; False if it already was (a redelivery)."""
        ...


class SqlProcessedEvents:
    """`ProcessedEvents` on one service's table: the event id's primary key makes a redelivery
    a no-op (`ON CONFLICT DO NOTHING`), over the caller's session."""

    def __init__(self, session: Session, table: type[ProcessedEventColumns]) -> None:
        self.session = session
        self.table = table

    def mark(self, event_id: uuid.UUID, position: MessagePosition) -> bool:
        """Record the event; False if it already was."""
        inserted = self.session.execute(
            insert(self.table)
            .values(
                event_id=event_id,
                topic=position.topic,
                partition=position.partition,
                offset=position.offset,
            )
            .on_conflict_do_nothing(index_elements=[self.table.event_id])
            .returning(self.table.event_id)
        ).first()
        return inserted is not None
