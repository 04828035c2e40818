"""API key administration over HTTP (admin only): create, list, show, revoke.

A created key's secret is in the 201 answer and nowhere else; the tracker keeps its hash.
Revocation reaches intake through the directory topic within seconds.
"""

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from services.tracker import audit
from services.tracker.access import MANAGE_KEYS
from services.tracker.auth import Principal
from services.tracker.deps import NowDep, SessionDep, UowDep, require
from services.tracker.keys import (
    InvalidKeyRequest,
    UnknownName,
    count_keys,
    create_key,
    get_key,
    list_keys,
    lock_key,
    revoke_key,
)
from services.tracker.orm import ApiKey
from shared.httpguard import error_responses
from shared.textguard import OPTIONAL_SINGLE_LINE, SINGLE_LINE

router = APIRouter(prefix="/v1/keys", tags=["keys"])

Admin = Annotated[Principal, Depends(require(MANAGE_KEYS))]
KeyId = Annotated[str, Path(pattern=r"^[a-z2-7]{8}$", description="密钥编号 key_id")]
Label = Annotated[str, Field(max_length=200, description="备注"), OPTIONAL_SINGLE_LINE]
Days = Annotated[int, Field(ge=1, le=3650, description="有效天数（密钥总会过期）")]


class Strict(BaseModel):
    """Request bodies refuse fields they do not define."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class UnitKeyRequest(Strict):
    """A key for one responsible unit: it reads and reports that unit's tasks only."""

    role: Literal["unit"]
    unit: Annotated[str, Field(max_length=200, description="单位名称"), SINGLE_LINE]
    label: Label = ""
    expires_in_days: Days = 365


class LeaderKeyRequest(Strict):
    """A key for one supervising leader: it reads the tasks that name this leader."""

    role: Literal["leader"]
    leader: Annotated[str, Field(max_length=50, description="分管领导姓名"), SINGLE_LINE]
    label: Label = ""
    expires_in_days: Days = 365


class StaffKeyRequest(Strict):
    """A key for the supervising office, an administrator or an operator."""

    role: Literal["supervisor", "admin", "operator"]
    label: Label = ""
    expires_in_days: Days = 365


KeyRequest = Annotated[
    UnitKeyRequest | LeaderKeyRequest | StaffKeyRequest, Field(discriminator="role")
]


class KeyView(BaseModel):
    """A key as listed: never its secret nor its hash."""

    key_id: str
    role: str
    unit: str | None
    leader: str | None
    label: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    state: Literal["active", "expired", "revoked"]


class KeyCreated(KeyView):
    """A new key; `key` is shown this once."""

    key: str = Field(description="完整密钥，只显示这一次")


class KeyPage(BaseModel):
    """A page of keys, newest first."""

    items: list[KeyView]
    total: int
    limit: int
    offset: int


def _view(key: ApiKey, now: dt.datetime) -> KeyView:
    state: Literal["active", "expired", "revoked"] = (
        "revoked"
        if key.revoked_at is not None
        else "expired"
        if key.expires_at is not None and key.expires_at <= now
        else "active"
    )
    return KeyView(
        key_id=key.key_id,
        role=key.role,
        unit=key.unit.name if key.unit else None,
        leader=key.leader,
        label=key.label,
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        state=state,
    )


def _no_key(key_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"密钥不存在 (no key {key_id})")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    responses=error_responses(401, 403, 413, 422, 429, 503),
)
def create(body: KeyRequest, request: Request, uow: UowDep, who: Admin, now: NowDep) -> KeyCreated:
    """Create a key for a unit, a leader or a staff role; the secret is shown once."""
    try:
        issued = create_key(
            uow.session,
            role=body.role,
            unit_name=body.unit if isinstance(body, UnitKeyRequest) else None,
            leader=body.leader if isinstance(body, LeaderKeyRequest) else None,
            label=body.label,
            expires_at=now + dt.timedelta(days=body.expires_in_days),
            now=now,
        )
    except (InvalidKeyRequest, UnknownName) as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=[{"type": "value_error", "loc": ["body", exc.field], "msg": str(exc)}],
        ) from exc
    key = get_key(uow.session, key_id=issued.key_id)
    assert key is not None
    view = _view(key, now)
    audit.record_write(
        uow.session,
        request,
        principal=who,
        now=now,
        status=201,
        object_=issued.key_id,
        details={
            "role": view.role,
            "unit": view.unit,
            "leader": view.leader,
            "expires_at": view.expires_at.isoformat() if view.expires_at else None,
        },
    )
    uow.commit()
    return KeyCreated(**view.model_dump(), key=issued.plaintext)


@router.get("", response_model=KeyPage, responses=error_responses(401, 403, 422, 429, 503))
def index(
    db: SessionDep,
    _who: Admin,
    now: NowDep,
    include_revoked: Annotated[bool, Query(description="包括已吊销的密钥")] = True,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> KeyPage:
    """Keys, newest first; never their secrets."""
    keys = list_keys(db, limit=limit, offset=offset, include_revoked=include_revoked)
    return KeyPage(
        items=[_view(k, now) for k in keys],
        total=count_keys(db, include_revoked=include_revoked),
        limit=limit,
        offset=offset,
    )


@router.get(
    "/{key_id}", response_model=KeyView, responses=error_responses(401, 403, 404, 422, 429, 503)
)
def show(key_id: KeyId, db: SessionDep, _who: Admin, now: NowDep) -> KeyView:
    """One key; never its secret."""
    key = get_key(db, key_id=key_id)
    if key is None:
        raise _no_key(key_id)
    return _view(key, now)


@router.post(
    "/{key_id}/revoke",
    response_model=KeyView,
    responses=error_responses(401, 403, 404, 422, 429, 503),
)
def revoke(key_id: KeyId, request: Request, uow: UowDep, who: Admin, now: NowDep) -> KeyView:
    """Revoke a key (again is harmless); intake refuses it within seconds."""
    # Locked before it is looked at: of two revocations at once, the second sees the first's.
    key = lock_key(uow.session, key_id=key_id)
    if key is None:
        raise _no_key(key_id)
    already = key.revoked_at is not None
    key = revoke_key(uow.session, key_id=key_id, now=now)
    audit.record_write(
        uow.session, request, principal=who, now=now, details={"already_revoked": already}
    )
    uow.commit()
    return _view(key, now)
