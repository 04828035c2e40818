"""The audit log: every write and every refused attempt — who, what, when, from where.

A successful write is recorded by its route in the request's own transaction, so the
record and the change commit together. A refused attempt (401, 403, a 404 that hides an
object the caller may not see, or any failed write) rolls its transaction back, so the
middleware here records it afterwards in a short transaction of its own.
"""

from __future__ import annotations

import datetime as dt
import getpass
import socket
from typing import Any

import structlog
from fastapi import FastAPI, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from services.tracker.auth import Principal
from services.tracker.orm import AuditEntry
from shared.clock import Clock
from shared.db import UnitOfWork

log = structlog.get_logger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _clip(value: str | None, length: int) -> str | None:
    if value is None:
        return None
    return value.encode("utf-8", "backslashreplace").decode("utf-8")[:length]


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", None) or request.url.path


def _action(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "name", None) or "unmatched"


def _object(request: Request) -> str | None:
    explicit: str | None = getattr(request.state, "audit_object", None)
    if explicit is not None:
        return explicit
    params = request.path_params
    value = params.get("code") or params.get("key_id")
    return str(value) if value is not None else None


def entry(
    *,
    at: dt.datetime,
    principal: Principal | None,
    action: str,
    method: str,
    route: str,
    object_: str | None,
    outcome: str,
    status: int,
    client: str | None,
    key_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """One audit record."""
    return AuditEntry(
        at=at,
        key_id=_clip(principal.key_id if principal else key_id, 40),
        role=principal.role if principal else None,
        unit=principal.unit if principal else None,
        leader=principal.leader if principal else None,
        action=_clip(action, 60),
        method=method[:10],
        route=_clip(route, 200),
        object=_clip(object_, 200),
        outcome=outcome,
        status=status,
        client=_clip(client, 100),
        details=details or {},
    )


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
        entry(
            at=now,
            principal=principal,
            action=_action(request),
            method=request.method,
            route=_route(request),
            object_=object_ if object_ is not None else _object(request),
            outcome="ok",
            status=status,
            client=request.client.host if request.client else None,
            details=details,
        )
    )
    request.state.audit_recorded = True


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
        entry(
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


def _outcome(request: Request, status: int) -> str | None:
    """What to record for a finished request, or None for nothing."""
    if getattr(request.state, "audit_recorded", False) or status == 429:
        return None
    if status in (401, 403):
        return "denied"
    if status == 404 and getattr(request.state, "audit_hidden", False):
        return "hidden"
    if request.method in WRITE_METHODS and status >= 400:
        return "error" if status >= 500 else "refused"
    return None


def _failure_details(request: Request) -> dict[str, Any]:
    rule: str | None = getattr(request.state, "audit_rule", None)
    return {"rule": rule} if rule else {}


def install(app: FastAPI, *, session_factory: sessionmaker[Session], clock: Clock) -> None:
    """Record refused attempts after the request's own transaction has rolled back."""

    def write(record: AuditEntry) -> None:
        with UnitOfWork(session_factory) as uow:
            uow.session.add(record)
            uow.commit()

    @app.middleware("http")
    async def audit_refusals(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        outcome = _outcome(request, response.status_code)
        if outcome is None:
            return response
        principal: Principal | None = getattr(request.state, "principal", None)
        record = entry(
            at=clock.now(),
            principal=principal,
            key_id=getattr(request.state, "claimed_key_id", None),
            action=_action(request),
            method=request.method,
            route=_route(request),
            object_=_object(request),
            outcome=outcome,
            status=response.status_code,
            client=request.client.host if request.client else None,
            details=_failure_details(request),
        )
        try:
            await run_in_threadpool(write, record)
        except Exception as exc:  # the database may be away; the answer still goes out
            log.error("audit.write_failed", error=repr(exc), action=record.action)
        return response
