"""Operations endpoints every service serves: /healthz, /readyz, /metrics, request counts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from shared.db import UnitOfWork

Checks = Callable[[], dict[str, str]]


def database_check(session_factory: sessionmaker[Session]) -> dict[str, str]:
    """`ok` if the database answers a trivial query, else the error's type."""
    try:
        with UnitOfWork(session_factory) as uow:
            uow.session.execute(text("SELECT 1"))
    except Exception as exc:
        return {"database": f"error: {type(exc).__name__}"}
    return {"database": "ok"}


def add_ops_routes(app: FastAPI, *, requests: Counter, checks: Checks, ready_doc: str) -> None:
    """Count requests by route and status, and serve the three ops endpoints."""

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        requests.labels(getattr(route, "path", "unmatched"), str(response.status_code)).inc()
        return response

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """Alive."""
        return {"status": "ok"}

    def readyz() -> JSONResponse:
        results = checks()
        ok = all(value == "ok" for value in results.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": results},
            status_code=200 if ok else 503,
        )

    readyz.__doc__ = ready_doc
    app.get("/readyz", tags=["ops"], responses={503: {"description": "未就绪"}})(readyz)

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
