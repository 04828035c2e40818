"""API key administration: create (the secret shown once), revoke; each change reaches intake."""

from __future__ import annotations

import datetime as dt

from services.tracker.orm import ApiKey, Unit
from services.tracker.usecases.directory import publish_key
from services.tracker.usecases.ports import UnitOfWork
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


def _scope(uow: UnitOfWork, *, role: str, unit_name: str | None, leader: str | None) -> Unit | None:
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
        if not uow.tasks.leader_known(leader):
            raise UnknownName("leader", f"未知分管领导 (no task names leader {leader})")
    if role != PrincipalRole.UNIT:
        return None
    if not unit_name:
        raise InvalidKeyRequest("unit", "unit 密钥须指明单位 (a unit key needs a unit)")
    unit = uow.units.by_name(unit_name)
    if unit is None:
        raise UnknownName("unit", f"未知单位 (unknown unit): {unit_name}")
    return unit


def create_key(
    uow: UnitOfWork,
    *,
    role: str,
    unit_name: str | None,
    label: str,
    expires_at: dt.datetime | None,
    now: dt.datetime,
    leader: str | None = None,
) -> IssuedKey:
    """Create a key; the plaintext is returned once and never stored."""
    unit = _scope(uow, role=role, unit_name=unit_name, leader=leader)
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
    uow.keys.add(key)
    uow.flush()
    publish_key(uow.outbox, key, now=now)
    return issued


def revoke_key(uow: UnitOfWork, *, key_id: str, now: dt.datetime) -> ApiKey:
    """Revoke a key (again is harmless); intake stops accepting it once it reads the entry."""
    key = uow.keys.get_for_update(key_id)
    if key is None:
        raise UnknownKeyOrUnit(f"未知密钥 (unknown key id): {key_id}")
    if key.revoked_at is None:
        key.revoked_at = now
        publish_key(uow.outbox, key, now=now)
    return key
