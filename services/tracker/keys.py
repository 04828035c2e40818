"""API key administration on the caller's session: the use cases in `usecases.keys` over SQL,
and the queries that list and show keys."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.tracker.adapters.sql import SqlUnitOfWork, lock_key
from services.tracker.orm import ApiKey
from services.tracker.usecases import keys as usecases
from services.tracker.usecases.keys import InvalidKeyRequest, UnknownKeyOrUnit, UnknownName
from services.tracker.usecases.ports import UnitOfWork

P = ParamSpec("P")
R = TypeVar("R")

__all__ = [
    "InvalidKeyRequest",
    "UnknownKeyOrUnit",
    "UnknownName",
    "count_keys",
    "create_key",
    "get_key",
    "list_keys",
    "lock_key",
    "revoke_key",
]


def _on_session(
    usecase: Callable[Concatenate[UnitOfWork, P], R],
) -> Callable[Concatenate[Session, P], R]:
    """The use case, run over the caller's session (the caller owns the transaction)."""

    @functools.wraps(usecase)
    def run(session: Session, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return usecase(SqlUnitOfWork(session), *args, **kwargs)

    return run


# `usecases.keys.create_key`: the plaintext is returned once.
create_key = _on_session(usecases.create_key)
# `usecases.keys.revoke_key`.
revoke_key = _on_session(usecases.revoke_key)


def get_key(session: Session, *, key_id: str) -> ApiKey | None:
    """One key by its id."""
    return session.execute(select(ApiKey).where(ApiKey.key_id == key_id)).scalar_one_or_none()


def list_keys(
    session: Session,
    *,
    limit: int | None = None,
    offset: int = 0,
    include_revoked: bool = True,
) -> list[ApiKey]:
    """Keys, newest first."""
    query = select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.execute(query.limit(limit).offset(offset)).scalars())


def count_keys(session: Session, *, include_revoked: bool = True) -> int:
    """How many keys `list_keys` pages through."""
    query = select(func.count()).select_from(ApiKey)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return int(session.execute(query).scalar_one())
