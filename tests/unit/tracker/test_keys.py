"""Key administration over fake repositories: what a key may be scoped to, revocation."""

from __future__ import annotations

import datetime as dt

import pytest

from services.tracker.usecases.keys import (
    InvalidKeyRequest,
    UnknownKeyOrUnit,
    UnknownName,
    create_key,
    revoke_key,
)
from shared.apikeys import hash_key

from .fakes import LEAD, LEADER, START, FakeUnitOfWork, make_task, uow_with

LATER = START + dt.timedelta(days=30)


def make(uow: FakeUnitOfWork, role: str, **kw: object) -> str:
    fields: dict[str, object] = {"unit_name": None, "label": "", "expires_at": LATER}
    fields.update(kw)
    return create_key(uow, role=role, now=START, **fields).plaintext  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("role", "scope"),
    [
        ("unit", {"unit_name": LEAD}),
        ("leader", {"leader": LEADER}),
        ("supervisor", {}),
        ("admin", {}),
        ("operator", {}),
    ],
)
def test_a_key_is_stored_by_its_hash_and_announced(role: str, scope: dict[str, str]) -> None:
    uow = uow_with(make_task())
    plaintext = make(uow, role, label="区长办" * 100, **scope)

    [key] = uow.keys.by_id.values()
    assert key.key_hash == hash_key(plaintext)
    assert (key.role, key.leader, key.label, key.expires_at) == (
        role,
        scope.get("leader"),
        ("区长办" * 100)[:200],
        LATER,
    )
    assert (key.unit.name if key.unit else None) == scope.get("unit_name")
    assert uow.flushes == 1
    [entry] = uow.outbox.directory()
    assert entry.key == f"key:{key.key_id}"
    assert entry.event is not None
    assert (entry.event["role"], entry.event["unit"], entry.event["revoked"]) == (
        role,
        scope.get("unit_name"),
        False,
    )


@pytest.mark.parametrize(
    ("role", "scope", "field", "error"),
    [
        ("nobody", {}, "role", InvalidKeyRequest),
        ("supervisor", {"unit_name": LEAD}, "unit", InvalidKeyRequest),
        ("admin", {"leader": LEADER}, "leader", InvalidKeyRequest),
        ("unit", {"leader": LEADER, "unit_name": LEAD}, "leader", InvalidKeyRequest),
        ("leader", {}, "leader", InvalidKeyRequest),
        ("leader", {"leader": ""}, "leader", InvalidKeyRequest),
        ("leader", {"leader": "无此人"}, "leader", UnknownName),
        ("unit", {}, "unit", InvalidKeyRequest),
        ("unit", {"unit_name": "无此单位"}, "unit", UnknownName),
        ("unit", {"unit_name": LEAD, "label": "a\u202eb"}, "label", InvalidKeyRequest),
        ("unit", {"unit_name": LEAD, "expires_at": START}, "expires_at", InvalidKeyRequest),
    ],
)
def test_a_key_that_does_not_fit_its_role_is_refused_naming_the_field(
    role: str,
    scope: dict[str, object],
    field: str,
    error: type[InvalidKeyRequest] | type[UnknownName],
) -> None:
    uow = uow_with(make_task())
    with pytest.raises(error) as raised:
        make(uow, role, **scope)
    assert isinstance(raised.value, InvalidKeyRequest | UnknownName)
    assert raised.value.field == field
    assert uow.keys.by_id == {}
    assert uow.outbox.queued == []


def test_a_revocation_is_announced_once_as_a_tombstone() -> None:
    uow = uow_with(make_task())
    make(uow, "unit", unit_name=LEAD)
    [key_id] = uow.keys.by_id

    first = revoke_key(uow, key_id=key_id, now=START)
    again = revoke_key(uow, key_id=key_id, now=LATER)

    assert first is again
    assert first.revoked_at == START
    entries = uow.outbox.directory()
    assert [e.event is None for e in entries] == [False, True]


def test_revoking_an_unknown_key_is_refused() -> None:
    with pytest.raises(UnknownKeyOrUnit):
        revoke_key(uow_with(), key_id="nosuchkey", now=START)
