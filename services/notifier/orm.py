"""Postgres tables owned by the notifier (schema `notifier`).

Each mapped class is named `...Row` (`TaskCondition`, `Digest` and `Snooze` are the escalation
engine's dataclasses). Only the SQL adapters (adapters/sql.py) use these rows; the use cases
see the records of `usecases/ports.py` the adapters fill from them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import text as sql_text

from services.notifier.usecases.ports import PENDING
from shared.audit_log import AuditLogColumns
from shared.db import Timestamp, schema_metadata
from shared.processed import ProcessedEventColumns

SCHEMA = "notifier"


class Base(DeclarativeBase):
    """Declarative base bound to the notifier schema."""

    metadata = schema_metadata(SCHEMA)


class TaskConditionRow(Base):
    """The latest known condition of a task, folded from task events."""

    __tablename__ = "task_conditions"

    task_code: Mapped[str] = mapped_column(String(120), primary_key=True)
    light: Mapped[str] = mapped_column(String(10))
    light_since: Mapped[dt.datetime] = mapped_column(Timestamp)
    # When the tracker emitted the event folded in last; an older event arriving late loses.
    occurred_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    event: Mapped[dict[str, Any]] = mapped_column(JSONB)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())


class DigestRow(Base):
    """One message to one recipient on one channel for one window; its id is the idempotency key.

    Composed (and committed) before the first send, so a resend after a crash carries the
    same id and the same tasks.
    """

    __tablename__ = "digests"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    recipient_role: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(20))
    window_start: Mapped[dt.datetime] = mapped_column(Timestamp)
    level: Mapped[int] = mapped_column(Integer)
    level_name: Mapped[str] = mapped_column(String(20))
    task_codes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    # The task conditions it was rendered from, so every resend renders the same message.
    tasks: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer)
    rounds: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    failed_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    # The dispatcher sending it and until when (the database's clock): set and committed
    # before the send, cleared when the outcome is recorded. An expired lease is a dead sender.
    lease_owner: Mapped[str | None] = mapped_column(Text)
    leased_until: Mapped[dt.datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        Index(
            "ix_digests_sending",
            "next_attempt_at",
            postgresql_where=sql_text("status = 'sending'"),
        ),
        Index("ix_digests_recipient", "recipient", "created_at"),
    )


class NotificationRow(Base):
    """One task, level, recipient, channel and window: the notification log.

    `id` is derived from the engine's notification id and the channel, so planning the same
    notification twice inserts it once.
    """

    __tablename__ = "notifications"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    notification_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    task_codes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    level: Mapped[int] = mapped_column(Integer)
    level_name: Mapped[str] = mapped_column(String(20))
    # What the recipient is asked to do (the level's action when it was planned).
    action: Mapped[str] = mapped_column(Text)
    sequence: Mapped[int] = mapped_column(Integer)
    recipient_role: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(20))
    window_start: Mapped[dt.datetime] = mapped_column(Timestamp)
    respond_by: Mapped[dt.date | None] = mapped_column(Date)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    digest_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey(f"{SCHEMA}.digests.id")
    )
    policy_fingerprint: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    # Held by quiet hours: the dispatcher composes it only from this instant on (null: at once).
    not_before: Mapped[dt.datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        Index(
            "ix_notifications_pending",
            "created_at",
            postgresql_where=sql_text("status = 'pending'"),
        ),
        Index("ix_notifications_recipient", "recipient", "created_at"),
        Index("ix_notifications_task_codes", "task_codes", postgresql_using="gin"),
        Index("ix_notifications_digest_id", "digest_id"),
        UniqueConstraint("notification_id", "channel"),
    )


class AcknowledgementRow(Base):
    """A 签收 of one level of a task; stops that level's repeats."""

    __tablename__ = "acknowledgements"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    task_code: Mapped[str] = mapped_column(String(120))
    level: Mapped[int] = mapped_column(Integer)
    by_role: Mapped[str] = mapped_column(String(20))
    by_name: Mapped[str] = mapped_column(String(200))
    key_id: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    acknowledged_at: Mapped[dt.datetime] = mapped_column(Timestamp)

    __table_args__ = (Index("ix_acknowledgements_task_code", "task_code", "acknowledged_at"),)


class SnoozeRow(Base):
    """Silence for a task (or one of its levels) until a time, for a recorded reason."""

    __tablename__ = "snoozes"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    task_code: Mapped[str] = mapped_column(String(120))
    level: Mapped[int | None] = mapped_column(Integer)
    until: Mapped[dt.datetime] = mapped_column(Timestamp)
    reason: Mapped[str] = mapped_column(Text)
    by_role: Mapped[str] = mapped_column(String(20))
    by_name: Mapped[str] = mapped_column(String(200))
    key_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    # Cancelled by the office before it ended: it silences nothing from then on.
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    cancelled_by: Mapped[str | None] = mapped_column(String(200))
    cancelled_key_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_snoozes_task_code", "task_code", "until"),)


class ProcessedEventRow(ProcessedEventColumns, Base):
    """Task events already folded in; makes redelivery harmless."""


class AuditEntry(AuditLogColumns, Base):
    """Append-only audit log of the notifier's API (shared.edge.audit): 签收, snoozes, refusals."""
