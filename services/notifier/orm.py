"""Postgres tables owned by the notifier (schema `notifier`)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, Integer, MetaData, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import text as sql_text

SCHEMA = "notifier"
Timestamp = DateTime(timezone=True)


class Base(DeclarativeBase):
    """Declarative base bound to the notifier schema."""

    metadata = MetaData(
        schema=SCHEMA,
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "pk": "pk_%(table_name)s",
        },
    )


class TaskCondition(Base):
    """The latest known light of a task, folded from task events."""

    __tablename__ = "task_conditions"

    task_code: Mapped[str] = mapped_column(String(120), primary_key=True)
    light: Mapped[str] = mapped_column(String(10))
    light_since: Mapped[dt.datetime] = mapped_column(Timestamp)
    event: Mapped[dict[str, Any]] = mapped_column(JSONB)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())


class Notification(Base):
    """One message to one recipient on one channel; the delivery log."""

    __tablename__ = "notifications"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    task_codes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    level: Mapped[int] = mapped_column(Integer)
    level_name: Mapped[str] = mapped_column(String(20))
    recipient_role: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        Index(
            "ix_notifications_pending",
            "created_at",
            postgresql_where=sql_text("status = 'pending'"),
        ),
        Index("ix_notifications_recipient", "recipient", "created_at"),
    )


class ProcessedEvent(Base):
    """Task events already folded in; makes redelivery harmless."""

    __tablename__ = "processed_events"

    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    topic: Mapped[str] = mapped_column(String(200))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    processed_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
