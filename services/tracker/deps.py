"""Request dependencies: one unit of work per request, the caller, the clock."""

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session

from services.tracker.auth import Principal, authenticate, bearer_token
from shared.db import UnitOfWork


def get_uow(request: Request) -> Iterator[UnitOfWork]:
    """The request's unit of work; a route commits it, or it rolls back."""
    with UnitOfWork(request.app.state.session_factory) as uow:
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
    token: Annotated[str, Depends(bearer_token)], db: SessionDep, now: NowDep
) -> Principal:
    """The authenticated caller."""
    return authenticate(db, token, now=now)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: str) -> Callable[[Principal], Principal]:
    """A dependency admitting only callers with one of `roles`."""

    def check(who: PrincipalDep) -> Principal:
        if who.role not in roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail={
                    "code": "role_not_allowed",
                    "message": f"该操作需要 {'/'.join(roles)} 角色",
                },
            )
        return who

    return check
