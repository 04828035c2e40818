"""Bearer API-key authentication against the tracker's own key table."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.tracker.orm import ApiKey
from shared.apikeys import claimed_key_id, hash_key, parse_key
from shared.vocabulary import PrincipalRole

bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer dbn_…`")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role, the unit of a unit key, the leader of a leader key."""

    key_id: str
    role: PrincipalRole
    unit: str | None
    unit_id: int | None
    leader: str | None = None


def unauthorized(detail: str) -> HTTPException:
    """A 401 that tells the client how to authenticate."""
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def authenticate(session: Session, token: str, *, now: dt.datetime) -> Principal:
    """Resolve a presented key to a principal, or raise 401."""
    if parse_key(token) is None:
        raise unauthorized("API 密钥格式无效 (malformed API key)")
    # Looked up by its SHA-256: the comparison an attacker can time is of hashes they
    # cannot steer, so it leaks nothing about stored keys.
    key = session.execute(
        select(ApiKey).where(ApiKey.key_hash == hash_key(token))
    ).scalar_one_or_none()
    if key is None or key.revoked_at is not None:
        raise unauthorized("API 密钥无效或已吊销 (unknown or revoked API key)")
    if key.expires_at is not None and key.expires_at <= now:
        raise unauthorized("API 密钥已过期 (expired API key)")
    return Principal(
        key_id=key.key_id,
        role=PrincipalRole(key.role),
        unit=key.unit.name if key.unit else None,
        unit_id=key.unit_id,
        leader=key.leader,
    )


def bearer_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The presented bearer token, or 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized("缺少 API 密钥 (missing bearer API key)")
    # For the audit record if the key turns out not to work (never the secret itself).
    request.state.claimed_key_id = claimed_key_id(credentials.credentials)
    return credentials.credentials
