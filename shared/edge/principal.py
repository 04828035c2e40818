"""Who is calling: the bearer key, resolved by the service to a principal, within its limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Protocol, TypeVar

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.apikeys import claimed_key_id
from shared.edge.ratelimit import RateLimit
from shared.httpguard import retry_after_header

bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer dbn_…`")


class Keyed(Protocol):
    """A principal: anything with the id of the key it presented."""

    @property
    def key_id(self) -> str:
        """The key's public id."""
        ...


P = TypeVar("P", bound=Keyed)


class RateLimited(HTTPException):
    """429: the key spent its budget; Retry-After says for how long."""

    def __init__(self, wait: float) -> None:
        super().__init__(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="请求过于频繁，请稍后重试 (rate limit exceeded for this API key)",
            headers=retry_after_header(wait),
        )


def unauthorized(detail: str) -> HTTPException:
    """A 401 that tells the client how to authenticate."""
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
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


def enforce_rate_limit(request: Request, key_id: str) -> None:
    """Spend one request of the key's budget, or raise `RateLimited`."""
    limiter: RateLimit = request.app.state.limiter
    wait = limiter.acquire(key_id)
    if wait is not None:
        raise RateLimited(wait)


def admit(request: Request, principal: P) -> P:
    """Remember the authenticated caller for the audit log and charge its rate limit."""
    request.state.principal = principal
    enforce_rate_limit(request, principal.key_id)
    return principal


def principal_dependency(authenticate: Callable[[Request, str], P]) -> Callable[..., P]:
    """A dependency: bearer token → `authenticate(request, token)` → admitted principal."""

    def principal(request: Request, token: Annotated[str, Depends(bearer_token)]) -> P:
        return admit(request, authenticate(request, token))

    return principal
