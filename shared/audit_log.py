"""The audit table every service with a database keeps, and the writer the edge uses.

What a record holds is `shared.edge.audit.record`'s; the columns it is stored in are
defined once, here, and mixed into each service's own table (`tracker.audit_log`,
`notifier.audit_log`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column, sessionmaker

from shared.db import Timestamp, UnitOfWork
from shared.edge.audit import Record, Write


class AuditLogColumns:
    """Mixin for a service's append-only `audit_log`: `class Row(AuditLogColumns, Base)`."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(Timestamp)
    # The key presented; for a refused unknown key, the id it claimed (it may not exist).
    key_id: Mapped[str | None] = mapped_column(String(40))
    role: Mapped[str | None] = mapped_column(String(20))
    unit: Mapped[str | None] = mapped_column(String(200))
    leader: Mapped[str | None] = mapped_column(String(50))
    action: Mapped[str] = mapped_column(String(60))
    method: Mapped[str] = mapped_column(String(10))
    route: Mapped[str] = mapped_column(String(200))
    object: Mapped[str | None] = mapped_column(String(200))
    # ok, denied (401/403), hidden (404 for an object that exists), refused (other 4xx).
    outcome: Mapped[str] = mapped_column(String(20))
    status: Mapped[int] = mapped_column(Integer)
    client: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)

    @declared_attr.directive
    @classmethod
    def __table_args__(cls) -> tuple[Index, ...]:
        # A fresh tuple per table: an index belongs to one table only.
        return (
            Index("ix_audit_log_at", "at"),
            Index("ix_audit_log_key_id_at", "key_id", "at"),
            Index("ix_audit_log_object_at", "object", "at"),
        )


def writer(session_factory: sessionmaker[Session], table: type[AuditLogColumns]) -> Write:
    """Stores one refused-attempt record in `table`, in a short transaction of its own."""

    def write(record: Record) -> None:
        with UnitOfWork(session_factory) as uow:
            uow.session.add(table(**record))
            uow.commit()

    return write
