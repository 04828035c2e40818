"""Operations endpoints every service serves: /healthz, /readyz, /metrics.

The edge (`shared.edge.create_edge_app`) includes `router` and keeps the service's
readiness checks in `app.state.ready_checks`; request counts come from its middleware.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from shared.db import UnitOfWork

Checks = Callable[[], dict[str, str]]

router = APIRouter(tags=["ops"])


def database_check(session_factory: sessionmaker[Session]) -> dict[str, str]:
    """`ok` if the database answers a trivial query, else the error's type."""
    try:
        with UnitOfWork(session_factory) as uow:
            uow.session.execute(text("SELECT 1"))
    except Exception as exc:
        return {"database": f"error: {type(exc).__name__}"}
    return {"database": "ok"}


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Alive."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "未就绪"}})
def readyz(request: Request) -> JSONResponse:
    """Ready when every check of the service passes (the checks are listed in the answer)."""
    checks: Checks = request.app.state.ready_checks
    results = checks()
    ok = all(value == "ok" for value in results.values())
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": results},
        status_code=200 if ok else 503,
    )


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics() -> Response:
    """Prometheus exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
