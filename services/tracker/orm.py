"""Postgres tables owned by the tracker (schema `tracker`)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    func,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.audit_log import AuditLogColumns
from shared.db import Timestamp, schema_metadata
from shared.processed import ProcessedEventColumns
from shared.vocabulary import TargetDirection, UnitRole

SCHEMA = "tracker"


class Base(DeclarativeBase):
    """Declarative base bound to the tracker schema."""

    metadata = schema_metadata(SCHEMA)


class Unit(Base):
    """A responsible unit (责任单位), or a group of units to be expanded by the office."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="agency")
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())


class Document(Base):
    """An imported task-division document."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(Text)
    year: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(30))
    imported_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    updated_at: Mapped[dt.datetime] = mapped_column(Timestamp)


class PlanGoal(Base):
    """A numbered goal of a five-year plan, to which annual tasks can be linked."""

    __tablename__ = "plan_goals"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    section: Mapped[str | None] = mapped_column(Text)
    item: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text)
    text_original: Mapped[str] = mapped_column(Text)
    start_year: Mapped[int | None] = mapped_column(Integer)
    end_year: Mapped[int | None] = mapped_column(Integer)


class Task(Base):
    """A key task (重点工作) and its current supervision state."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    section: Mapped[str | None] = mapped_column(Text)
    item: Mapped[str | None] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    text_original: Mapped[str | None] = mapped_column(Text)
    source_line: Mapped[int | None] = mapped_column(Integer)
    plan_goal_id: Mapped[int | None] = mapped_column(ForeignKey("plan_goals.id"))
    leaders: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    deadline_text: Mapped[str] = mapped_column(Text, default="")
    deadline_kind: Mapped[str] = mapped_column(String(20), default="unknown")
    start_date: Mapped[dt.date] = mapped_column(Date)
    due_date: Mapped[dt.date | None] = mapped_column(Date)
    extended_due_date: Mapped[dt.date | None] = mapped_column(Date)
    summary_due: Mapped[dt.date | None] = mapped_column(Date)
    cadence: Mapped[str | None] = mapped_column(String(20))
    # The report due day the document states (每月5日前); None: the policy's.
    report_due_day: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(30), default="not_started")
    percent: Mapped[int] = mapped_column(Integer, default=0)
    # Progress from the reported percent, targets and milestones by the policy's weights,
    # as of the last evaluation (the figure the light compared); None before any figure.
    progress: Mapped[float | None] = mapped_column(Numeric(5, 1, asdecimal=False))
    light: Mapped[str] = mapped_column(String(10), default="green")
    light_reasons: Mapped[list[str]] = mapped_column(JSONB, default=list)
    light_changed_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    days_overdue: Mapped[int] = mapped_column(Integer, default=0)
    # The scan visits only tasks whose light may have changed by now (index-driven).
    next_evaluation_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    last_report_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    last_report_has_blockers: Mapped[bool] = mapped_column(Boolean, default=False)
    # Reporting periods (2022-W05, 2022-03, 2022-Q1, 2022-H1 …) whose lead-unit report
    # stands; returned ones leave.
    reported_periods: Mapped[list[str]] = mapped_column(ARRAY(String(10)), default=list)
    red_since: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    report_due_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    pending_extension_due: Mapped[dt.date | None] = mapped_column(Date)
    pending_extension_asked_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    pending_extension_reason: Mapped[str | None] = mapped_column(Text)
    return_comment: Mapped[str | None] = mapped_column(Text)
    completion_requested_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    closed_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    # What the last task event announced; a new one goes out only when this changes.
    announced: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(
        Timestamp, server_default=func.now(), onupdate=func.now()
    )

    assignments: Mapped[list[TaskUnit]] = relationship(
        back_populates="task", cascade="all, delete-orphan", lazy="selectin"
    )
    milestones: Mapped[list[Milestone]] = relationship(
        back_populates="task",
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="Milestone.position",
    )
    targets: Mapped[list[Target]] = relationship(
        back_populates="task",
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="Target.position",
    )

    __table_args__ = (
        Index(
            "ix_tasks_next_evaluation_at",
            "next_evaluation_at",
            postgresql_where=sql_text("next_evaluation_at IS NOT NULL"),
        ),
        Index("ix_tasks_light", "light"),
        Index("ix_tasks_due_date", "due_date"),
    )

    @property
    def lead_units(self) -> list[str]:
        """Names of the lead units (牵头单位), in document order."""
        return [a.unit.name for a in self.assignments if a.role == UnitRole.LEAD]

    @property
    def co_units(self) -> list[str]:
        """Names of the co-units (配合单位), in document order."""
        return [a.unit.name for a in self.assignments if a.role == UnitRole.CO]

    @property
    def effective_due(self) -> dt.date | None:
        """The due date after any granted extension."""
        return self.extended_due_date or self.due_date


class TaskUnit(Base):
    """A unit's responsibility for a task: lead (牵头) or co-unit (配合)."""

    __tablename__ = "task_units"

    task_id: Mapped[int] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(10))
    position: Mapped[int] = mapped_column(Integer, default=0)
    # A co-unit's parts: the periods (2022-03, 2022-Q1 …) its part report stands for.
    reported_periods: Mapped[list[str]] = mapped_column(
        ARRAY(String(10)), default=list, server_default="{}"
    )

    task: Mapped[Task] = relationship(back_populates="assignments")
    unit: Mapped[Unit] = relationship(lazy="joined")

    __table_args__ = (Index("ix_task_units_unit_id", "unit_id"),)


class Milestone(Base):
    """A dated milestone inside a task (其中…)."""

    __tablename__ = "milestones"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    text: Mapped[str] = mapped_column(Text)
    due_date: Mapped[dt.date | None] = mapped_column(Date)
    done_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)

    task: Mapped[Task] = relationship(back_populates="milestones")


class Target(Base):
    """A numeric target of a task (新增就业4万人 → 新增就业, 40000, 人)."""

    __tablename__ = "targets"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    indicator: Mapped[str] = mapped_column(Text)
    value: Mapped[Decimal] = mapped_column(Numeric(20, 4))
    unit: Mapped[str] = mapped_column(String(20), default="")
    actual: Mapped[Decimal | None] = mapped_column(Numeric(20, 4))
    direction: Mapped[str] = mapped_column(String(10), default=TargetDirection.AT_LEAST)

    task: Mapped[Task] = relationship(back_populates="targets")


class Report(Base):
    """One progress report, append-only: the record the year-end assessment is built on."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    role: Mapped[str] = mapped_column(String(10))
    period: Mapped[str | None] = mapped_column(String(10))
    percent: Mapped[int] = mapped_column(Integer)
    summary: Mapped[str] = mapped_column(Text)
    blockers: Mapped[str | None] = mapped_column(Text)
    next_steps: Mapped[str | None] = mapped_column(Text)
    # The co-unit parts (their event ids) a lead unit's consolidated report cites, as checked
    # against the task's stored parts; the payload keeps what was sent.
    cites: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), default=list, server_default="{}"
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    submitted_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    returned_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    return_comment: Mapped[str | None] = mapped_column(Text)
    # The office accepted it (接受): it has left the review queue (the timeline says who).
    accepted_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    accept_comment: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())

    unit: Mapped[Unit] = relationship(lazy="joined")

    __table_args__ = (Index("ix_reports_task_id_submitted_at", "task_id", "submitted_at"),)


class ExtensionDecision(Base):
    """An extension request and how the office decided it; the original due date stays."""

    __tablename__ = "extension_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    requested_due: Mapped[dt.date] = mapped_column(Date)
    asked_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    reason: Mapped[str] = mapped_column(Text, default="")
    outcome: Mapped[str] = mapped_column(String(20))
    decided_at: Mapped[dt.datetime] = mapped_column(Timestamp)
    comment: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_extension_decisions_task_id", "task_id"),)


class TaskAction(Base):
    """One entry of a task's timeline and the audit log: who did what, when, from where."""

    __tablename__ = "task_actions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(40))
    actor_role: Mapped[str] = mapped_column(String(30))
    actor_unit: Mapped[str | None] = mapped_column(String(200))
    actor_key_id: Mapped[str | None] = mapped_column(String(40))
    at: Mapped[dt.datetime] = mapped_column(Timestamp)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)

    __table_args__ = (Index("ix_task_actions_task_id_at", "task_id", "at"),)


class ProcessedEvent(ProcessedEventColumns, Base):
    """Events already applied; makes redelivery harmless."""


class OutboxMessage(Base):
    """An event to publish, written in the same transaction as the change it announces."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    topic: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    # None is a tombstone: on a compacted topic it deletes the key.
    payload: Mapped[bytes | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
    published_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        Index("ix_outbox_unpublished", "id", postgresql_where=sql_text("published_at IS NULL")),
    )


class ApiKey(Base):
    """An API key: only its hash is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    # A leader key reads only the tasks whose 分管领导 include this name.
    leader: Mapped[str | None] = mapped_column(String(50))
    label: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=func.now())
    expires_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(Timestamp)

    unit: Mapped[Unit | None] = relationship(lazy="joined")


class AuditEntry(AuditLogColumns, Base):
    """Append-only audit log: every write and every refused attempt, who, what, when, where."""


__all__ = [
    "ApiKey",
    "AuditEntry",
    "Base",
    "Document",
    "ExtensionDecision",
    "Milestone",
    "OutboxMessage",
    "PlanGoal",
    "ProcessedEvent",
    "Report",
    "Target",
    "Task",
    "TaskAction",
    "TaskUnit",
    "Unit",
]
