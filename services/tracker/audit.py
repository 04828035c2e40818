"""The tracker's audit log (`tracker.audit_log`): every write and every refused attempt.

What is recorded, and when, is the edge's (`shared.edge.audit`): a successful write is
recorded by its route in the request's own transaction (`record_write`); a refused attempt
by the edge's `AuditTrail` afterwards, through `writer`. Writes from the command line are
recorded by `record_console`.
"""

from __future__ import annotations

import datetime as dt
import getpass
import socket
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from services.tracker.auth import Principal
from services.tracker.orm import AuditEntry
from shared import audit_log
from shared.edge import audit as edge_audit
from shared.edge.audit import Write


def record_write(
    session: Session,
    request: Request,
    *,
    principal: Principal,
    now: dt.datetime,
    status: int = 200,
    object_: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record a successful write in the caller's transaction."""
    session.add(
        AuditEntry(
            **edge_audit.written(
                request,
                principal=principal,
                now=now,
                status=status,
                object_=object_,
                details=details,
            )
        )
    )


def record_console(
    session: Session,
    *,
    action: str,
    object_: str | None,
    now: dt.datetime,
    details: dict[str, Any] | None = None,
) -> None:
    """Record a write made from the command line, in the caller's transaction."""
    try:
        who = f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):
        who = "unknown"
    session.add(
        AuditEntry(
            **edge_audit.record(
                at=now,
                principal=None,
                action=action,
                method="CLI",
                route="duban keys",
                object_=object_,
                outcome="ok",
                status=0,
                client=who,
                details=details,
            )
        )
    )


def writer(session_factory: sessionmaker[Session]) -> Write:
    """Stores one refused-attempt record in `tracker.audit_log`, in a transaction of its own."""
    return audit_log.writer(session_factory, AuditEntry)
