"""The notifier's audit log (`notifier.audit_log`), written by the edge's audit trail.

A 签收 or snooze is recorded by its route in the request's own transaction
(`record_write`); a refused attempt by `shared.edge.audit.AuditTrail`, through `writer`.
"""

from __future__ import annotations

import datetime as dt

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from services.notifier.orm import AuditEntry
from shared import audit_log
from shared.edge import audit as edge_audit
from shared.events import ApiKeyPublished


def record_write(
    session: Session,
    request: Request,
    *,
    principal: ApiKeyPublished,
    now: dt.datetime,
    status: int,
) -> None:
    """Record a successful write in the caller's transaction."""
    session.add(
        AuditEntry(**edge_audit.written(request, principal=principal, now=now, status=status))
    )


def writer(session_factory: sessionmaker[Session]) -> edge_audit.Write:
    """Stores one refused-attempt record in `notifier.audit_log`, in a transaction of its own."""
    return audit_log.writer(session_factory, AuditEntry)
