"""One error envelope for every answer that is not a success: `{"detail": …}`.

(HTTPException answers already take this shape: FastAPI's own handler gives `{"detail"}`.)

Validation problems name the field; rule refusals name the rule (`{code, message}`); the
database answers 503 with Retry-After only when it is unreachable or a statement timed out
(`OperationalError`, `InterfaceError`), or when no pooled connection came free within the
pool timeout (the service is saturated: shed, with a short Retry-After); never for data it
refused: a value it cannot store is the request's fault (422), a broken constraint a
conflict (409).
"""

from __future__ import annotations

from typing import Any, Protocol

import structlog
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared import metrics
from shared.httpguard import retry_after_header, validation_problems

log = structlog.get_logger(__name__)

DB_RETRY_AFTER_SECONDS = 5


class RuleError(Protocol):
    """A domain refusal: the rule's `code`, its HTTP status and its `{code, message}` body."""

    code: str
    http_status: int

    def to_body(self) -> dict[str, Any]:
        """The `detail` of the answer."""
        ...


def rule_refused(request: Request, exc: Exception) -> JSONResponse:
    """The answer to a `RuleError`; the audit log records which rule refused."""
    rule: RuleError = exc  # type: ignore[assignment]
    request.state.audit_rule = rule.code
    return JSONResponse({"detail": rule.to_body()}, status_code=rule.http_status)


def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Also a statement cancelled by the request timeout: the client may retry.
    log.warning("http.database_unavailable", path=request.url.path, error=type(exc).__name__)
    return JSONResponse(
        {"detail": "数据库暂不可用或查询超时，请稍后重试 (database unavailable)"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers=retry_after_header(DB_RETRY_AFTER_SECONDS),
    )


def _pool_exhausted(request: Request, exc: Exception) -> JSONResponse:
    # Every connection was busy for the whole pool timeout: overloaded, not broken. The
    # audit trail skips it (nothing was attempted; writing would need the pool too).
    service = str(getattr(request.app.state, "service", "unknown"))
    metrics.HTTP_SHED.labels(service, "db_pool").inc()
    request.state.shed = True
    settings = getattr(request.app.state, "settings", None)
    wait = getattr(settings, "shed_retry_after_seconds", 1)
    log.warning("http.database_pool_exhausted", path=request.url.path)
    return JSONResponse(
        {"detail": "数据库连接池已满，服务繁忙，请稍后重试 (database connection pool exhausted)"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers=retry_after_header(wait),
    )


def _data_refused(request: Request, exc: Exception) -> JSONResponse:
    log.warning("http.database_refused_data", path=request.url.path, error=type(exc).__name__)
    return JSONResponse(
        {"detail": {"code": "data_rejected", "message": "数据库拒收该数据 (value not storable)"}},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def _conflict(request: Request, exc: Exception) -> JSONResponse:
    log.warning("http.database_conflict", path=request.url.path, error=type(exc).__name__)
    return JSONResponse(
        {"detail": {"code": "conflict", "message": "与已有记录冲突，请刷新后重试 (conflict)"}},
        status_code=status.HTTP_409_CONFLICT,
    )


def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # Any other database error: the request's statement is wrong, not the database away.
    if isinstance(exc, OperationalError | InterfaceError):
        return _unavailable(request, exc)
    if isinstance(exc, DataError):
        return _data_refused(request, exc)
    if isinstance(exc, IntegrityError):
        return _conflict(request, exc)
    return _unexpected(request, exc)


def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        {"detail": validation_problems(exc.errors())},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The client learns nothing about the internals; the log has the traceback.
    log.error(
        "http.unhandled",
        service=getattr(request.app.state, "service", None),
        path=request.url.path,
        method=request.method,
        error=type(exc).__name__,
        exc_info=exc,
    )
    return JSONResponse({"detail": "内部错误 (internal error)"}, status_code=500)


def install_error_envelope(app: FastAPI, *rules: type[Exception]) -> None:
    """Every error answer in the one envelope; `rules` are the service's `RuleError` types."""
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeout, _pool_exhausted)
    for rule in rules:
        app.add_exception_handler(rule, rule_refused)
    app.add_exception_handler(Exception, _unexpected)
