"""The audit trail every service keeps: who did what, when, from where, and how it ended.

A successful write is recorded by its route in the request's own transaction (`written`),
so the record and the change commit together. A refused attempt (401, 403, a 404 that
hides an object the caller may not see, or any failed write) rolls its transaction back, so
`AuditTrail` records it afterwards in a short transaction of its own, before the answer
goes out. Each service stores the records in its own table, through its `write`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.clock import Clock

log = structlog.get_logger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Path parameters that name the object a request is about, in order of preference.
OBJECT_PARAMETERS = ("code", "key_id", "digest_id")

Record = dict[str, Any]
Write = Callable[[Record], None]


def clip(value: str | None, length: int) -> str | None:
    """`value` cut to `length`, with anything unencodable escaped."""
    if value is None:
        return None
    return value.encode("utf-8", "backslashreplace").decode("utf-8")[:length]


def route_of(request: Request) -> str:
    """The matched route's template, else the raw path."""
    route = request.scope.get("route")
    return getattr(route, "path", None) or request.url.path


def action_of(request: Request) -> str:
    """The matched route's name (its handler's), else `unmatched`."""
    route = request.scope.get("route")
    return getattr(route, "name", None) or "unmatched"


def object_of(request: Request) -> str | None:
    """What the request is about: set by the route, else named by a path parameter."""
    explicit: str | None = getattr(request.state, "audit_object", None)
    if explicit is not None:
        return explicit
    params = request.path_params
    for name in OBJECT_PARAMETERS:
        value = params.get(name)
        if value is not None:
            return str(value)
    return None


def record(
    *,
    at: dt.datetime,
    principal: Any,
    action: str,
    method: str,
    route: str,
    object_: str | None,
    outcome: str,
    status: int,
    client: str | None,
    key_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> Record:
    """The columns of one audit record (every service's audit table has these)."""
    return {
        "at": at,
        "key_id": clip(principal.key_id if principal else key_id, 40),
        "role": getattr(principal, "role", None),
        "unit": clip(getattr(principal, "unit", None), 200),
        "leader": clip(getattr(principal, "leader", None), 50),
        "action": clip(action, 60),
        "method": method[:10],
        "route": clip(route, 200),
        "object": clip(object_, 200),
        "outcome": outcome,
        "status": status,
        "client": clip(client, 100),
        "details": details or {},
    }


def written(
    request: Request,
    *,
    principal: Any,
    now: dt.datetime,
    status: int = 200,
    object_: str | None = None,
    details: dict[str, Any] | None = None,
) -> Record:
    """The record of a successful write, for the route to add to its own transaction."""
    request.state.audit_recorded = True
    return record(
        at=now,
        principal=principal,
        action=action_of(request),
        method=request.method,
        route=route_of(request),
        object_=object_ if object_ is not None else object_of(request),
        outcome="ok",
        status=status,
        client=request.client.host if request.client else None,
        details=details,
    )


def outcome_of(request: Request, status: int) -> str | None:
    """What to record for a finished request, or None for nothing."""
    if getattr(request.state, "audit_recorded", False) or status == 429:
        return None
    if getattr(request.state, "shed", False):  # overloaded: nothing was attempted
        return None
    if status in (401, 403):
        return "denied"
    if status == 404 and getattr(request.state, "audit_hidden", False):
        return "hidden"
    if request.method in WRITE_METHODS and status >= 400:
        return "error" if status >= 500 else "refused"
    return None


def refusal(request: Request, status: int, now: dt.datetime) -> Record | None:
    """The record of a refused request, or None if it needs none."""
    outcome = outcome_of(request, status)
    if outcome is None:
        return None
    rule: str | None = getattr(request.state, "audit_rule", None)
    return record(
        at=now,
        principal=getattr(request.state, "principal", None),
        key_id=getattr(request.state, "claimed_key_id", None),
        action=action_of(request),
        method=request.method,
        route=route_of(request),
        object_=object_of(request),
        outcome=outcome,
        status=status,
        client=request.client.host if request.client else None,
        details={"rule": rule} if rule else {},
    )


class AuditTrail:
    """ASGI middleware: records refused attempts once the request's transaction is over."""

    def __init__(self, app: ASGIApp, *, write: Write, clock: Clock) -> None:
        self.app = app
        self.write = write
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def send_audited(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                await self._record(Request(scope), int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_audited)
        except Exception:
            if not started:  # answered 500 further out
                await self._record(Request(scope), 500)
            raise

    async def _record(self, request: Request, status: int) -> None:
        entry = refusal(request, status, self.clock.now())
        if entry is None:
            return
        try:
            await run_in_threadpool(self.write, entry)
        except Exception as exc:  # the database may be away; the answer still goes out
            log.error("audit.write_failed", error=repr(exc), action=entry["action"])
