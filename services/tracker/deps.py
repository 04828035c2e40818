"""Request dependencies: one unit of work per request, the caller, the clock, access rules."""

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from services.tracker import access
from services.tracker.access import Permission
from services.tracker.adapters.sql import lock_task
from services.tracker.auth import Principal, authenticate, bearer_token
from services.tracker.orm import Task
from shared.db import UnitOfWork
from shared.edge.principal import admit


def get_uow(request: Request) -> Iterator[UnitOfWork]:
    """The request's unit of work; a route commits it, or it rolls back."""
    timeout_ms = str(int(request.app.state.settings.request_statement_timeout_ms))
    # A read sees one snapshot: a task and its report history from the same instant, not a
    # task read before a report was applied and its reports read after.
    snapshot = request.method in ("GET", "HEAD")
    with UnitOfWork(request.app.state.session_factory) as uow:
        # A runaway query is cancelled (and answered 503) instead of holding a connection.
        # Set as each transaction begins, so a database that is down fails the first real
        # statement (which /readyz reports), not the dependency.
        @event.listens_for(uow.session, "after_begin")
        def statement_timeout(_session: Session, _transaction: Any, connection: Any) -> None:
            if snapshot:
                connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            connection.execute(
                text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": timeout_ms}
            )

        yield uow


UowDep = Annotated[UnitOfWork, Depends(get_uow)]


def get_session(uow: UowDep) -> Session:
    """The request's session."""
    return uow.session


SessionDep = Annotated[Session, Depends(get_session)]


def get_now(request: Request) -> dt.datetime:
    """The service clock's now, read once per request."""
    now: dt.datetime = request.app.state.clock.now()
    return now


NowDep = Annotated[dt.datetime, Depends(get_now)]


def get_principal(
    request: Request,
    token: Annotated[str, Depends(bearer_token)],
    db: SessionDep,
    now: NowDep,
) -> Principal:
    """The authenticated caller, within its key's rate limit."""
    return admit(request, authenticate(db, token, now=now))


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def forbidden(code: str, message: str) -> HTTPException:
    """A 403 naming the rule."""
    return HTTPException(status.HTTP_403_FORBIDDEN, detail={"code": code, "message": message})


def require(permission: Permission) -> Callable[[Principal], Principal]:
    """A dependency admitting only callers holding `permission` (see `access`)."""

    def check(who: PrincipalDep) -> Principal:
        if not permission.allows(who):
            raise forbidden("role_not_allowed", permission.message_zh)
        return who

    return check


TaskReaderDep = Annotated[Principal, Depends(require(access.READ_TASKS))]


def not_found(code: str) -> HTTPException:
    """The 404 for a task that does not exist or that the caller may not see."""
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"任务不存在 (no task {code})")


def visible_task(
    request: Request, db: Session, who: Principal, code: str, *, for_update: bool = False
) -> Task:
    """The task if the caller may see it; unknown and forbidden both answer the same 404.

    `for_update` (every write): the task is locked first, so who may act is decided on the
    row as it is now, and stays so until the request's transaction ends.
    """
    if for_update:
        task = lock_task(db, code)
    else:
        task = db.execute(select(Task).where(Task.code == code)).scalar_one_or_none()
    if task is None:
        raise not_found(code)
    if not access.may_see(who, task):
        request.state.audit_hidden = True
        raise not_found(code)
    return task
