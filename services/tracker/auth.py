"""Bearer API-key authentication against the tracker's own key table."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.tracker.orm import ApiKey
from shared.apikeys import hash_key, parse_key
from shared.edge.principal import bearer, bearer_token, unauthorized
from shared.vocabulary import PrincipalRole


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role, the unit of a unit key, the leader of a leader key."""

    key_id: str
    role: PrincipalRole
    unit: str | None
    unit_id: int | None
    leader: str | None = None


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


__all__ = ["Principal", "authenticate", "bearer", "bearer_token", "unauthorized"]
