"""API key administration: create (shown once), list, revoke; each change reaches intake."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.tracker.orm import ApiKey, Task, Unit
from services.tracker.service import publish_key
from shared.apikeys import ROLES, IssuedKey, issue_key
from shared.textguard import check_text
from shared.vocabulary import PrincipalRole


class UnknownKeyOrUnit(LookupError):
    """No such key, unit or leader."""


class InvalidKeyRequest(ValueError):
    """The request for a key does not fit its role; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class UnknownName(UnknownKeyOrUnit):
    """A unit or leader name that the catalog does not hold; `field` names which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _scope(
    session: Session, *, role: str, unit_name: str | None, leader: str | None
) -> Unit | None:
    if role not in ROLES:
        raise InvalidKeyRequest("role", f"未知角色 (unknown role {role!r})")
    if role != PrincipalRole.UNIT and unit_name is not None:
        raise InvalidKeyRequest("unit", "只有 unit 角色的密钥属于单位 (only unit keys have a unit)")
    if role != PrincipalRole.LEADER and leader is not None:
        raise InvalidKeyRequest(
            "leader", "只有 leader 角色的密钥属于分管领导 (only leader keys have a leader)"
        )
    if role == PrincipalRole.LEADER:
        if not leader:
            raise InvalidKeyRequest(
                "leader", "leader 密钥须指明分管领导 (a leader key needs a leader)"
            )
        known = session.execute(
            select(Task.id).where(Task.leaders.contains([leader])).limit(1)
        ).first()
        if known is None:
            raise UnknownName("leader", f"未知分管领导 (no task names leader {leader})")
    if role != PrincipalRole.UNIT:
        return None
    if not unit_name:
        raise InvalidKeyRequest("unit", "unit 密钥须指明单位 (a unit key needs a unit)")
    unit = session.execute(select(Unit).where(Unit.name == unit_name)).scalar_one_or_none()
    if unit is None:
        raise UnknownName("unit", f"未知单位 (unknown unit): {unit_name}")
    return unit


def create_key(
    session: Session,
    *,
    role: str,
    unit_name: str | None,
    label: str,
    expires_at: dt.datetime | None,
    now: dt.datetime,
    leader: str | None = None,
) -> IssuedKey:
    """Create a key; the plaintext is returned once and never stored."""
    unit = _scope(session, role=role, unit_name=unit_name, leader=leader)
    try:
        label = check_text(label, multiline=False, required=False)[:200]
    except ValueError as exc:
        raise InvalidKeyRequest("label", str(exc)) from exc
    if expires_at is not None and expires_at <= now:
        raise InvalidKeyRequest("expires_at", "有效期须晚于现在 (expiry must be in the future)")
    issued = issue_key(role)
    key = ApiKey(
        key_id=issued.key_id,
        key_hash=issued.key_hash,
        role=role,
        unit=unit,
        unit_id=unit.id if unit else None,
        leader=leader if role == PrincipalRole.LEADER else None,
        label=label,
        expires_at=expires_at,
        created_at=now,
    )
    session.add(key)
    session.flush()
    publish_key(session, key, now=now)
    return issued


def lock_key(session: Session, *, key_id: str) -> ApiKey | None:
    """The key, locked until the transaction ends and read as of the lock (lock, then decide).

    A copy already in the session is refreshed from the locked row, so a change to a key is
    never decided on a state another request has since changed.
    """
    return session.execute(
        select(ApiKey)
        .where(ApiKey.key_id == key_id)
        .with_for_update(of=ApiKey)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def revoke_key(session: Session, *, key_id: str, now: dt.datetime) -> ApiKey:
    """Revoke a key; intake stops accepting it as soon as it reads the directory entry."""
    key = lock_key(session, key_id=key_id)
    if key is None:
        raise UnknownKeyOrUnit(f"未知密钥 (unknown key id): {key_id}")
    if key.revoked_at is None:
        key.revoked_at = now
        publish_key(session, key, now=now)
    return key


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
