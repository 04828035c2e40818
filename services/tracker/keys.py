"""API key administration: create (shown once), list, revoke; each change reaches intake."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.tracker.orm import ApiKey, Unit
from services.tracker.service import publish_key
from shared.apikeys import IssuedKey, issue_key


class UnknownKeyOrUnit(LookupError):
    """No such key or unit."""


def create_key(
    session: Session,
    *,
    role: str,
    unit_name: str | None,
    label: str,
    expires_at: dt.datetime | None,
    now: dt.datetime,
) -> IssuedKey:
    """Create a key; the plaintext is returned once and never stored."""
    unit: Unit | None = None
    if role == "unit":
        if unit_name is None:
            raise ValueError("a unit key needs a unit")
        unit = session.execute(select(Unit).where(Unit.name == unit_name)).scalar_one_or_none()
        if unit is None:
            raise UnknownKeyOrUnit(f"未知单位 (unknown unit): {unit_name}")
    issued = issue_key(role)
    key = ApiKey(
        key_id=issued.key_id,
        key_hash=issued.key_hash,
        role=role,
        unit=unit,
        unit_id=unit.id if unit else None,
        label=label,
        expires_at=expires_at,
        created_at=now,
    )
    session.add(key)
    session.flush()
    publish_key(session, key, now=now)
    return issued


def revoke_key(session: Session, *, key_id: str, now: dt.datetime) -> ApiKey:
    """Revoke a key; intake stops accepting it as soon as it reads the directory entry."""
    key = session.execute(select(ApiKey).where(ApiKey.key_id == key_id)).scalar_one_or_none()
    if key is None:
        raise UnknownKeyOrUnit(f"未知密钥 (unknown key id): {key_id}")
    if key.revoked_at is None:
        key.revoked_at = now
        publish_key(session, key, now=now)
    return key


def list_keys(session: Session) -> list[ApiKey]:
    """Every key, newest first."""
    return list(session.execute(select(ApiKey).order_by(ApiKey.created_at.desc())).scalars())
