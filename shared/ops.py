"""Operations endpoints every service serves: /healthz, /readyz, /metrics.

The edge (`shared.edge.create_edge_app`) includes `router` and keeps the service's
readiness checks in `app.state.ready_checks`; request counts come from its middleware.

All three answer in milliseconds whatever the load: they run on the event loop (not on
the worker threads the routes queue for), are exempt from the in-flight limit, and do no
blocking I/O. Liveness touches nothing. Readiness reads the last result of
`DatabaseProbe`, which checks the database in a thread of its own on a connection of its
own (never the request pool), and the service's own checks, which read in-memory state.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, create_engine, text

log = structlog.get_logger(__name__)

Checks = Callable[[], dict[str, str]]

router = APIRouter(tags=["ops"])

# The routes the in-flight limit never refuses.
OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class DatabaseProbe:
    """Checks the database every `interval` seconds on its own connection, in its own thread.

    `check()` returns the last result without any I/O: `{"database": "ok"}`, the error's
    type, or that no check finished for too long (a database that hangs). `start()` runs
    the first check before it returns, so readiness is known from the first request.
    """

    def __init__(self, source: Engine, *, interval: float = 1.0, timeout: float = 2.0) -> None:
        self.interval = interval
        self.timeout = timeout
        # Stale once no check finished for this long (one may legitimately take `timeout`).
        self.max_age = 3 * interval + timeout
        url = source.url
        connect_args: dict[str, object] = {}
        if url.get_backend_name() == "postgresql":
            # Bounded connect and statement: a check never hangs on the database.
            millis = int(timeout * 1000)
            connect_args = {
                "connect_timeout": max(1, math.ceil(timeout)),
                "options": f"-c statement_timeout={millis}",
            }
        self.engine = create_engine(
            url, pool_size=1, max_overflow=0, pool_timeout=timeout, connect_args=connect_args
        )
        self._result: tuple[float, str] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> str:
        """Check the database now and remember the outcome."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            outcome = "ok"
        except Exception as exc:
            outcome = f"error: {type(exc).__name__}"
        if outcome != "ok" and (self._result is None or self._result[1] != outcome):
            log.warning("readiness.database_failing", outcome=outcome)
        self._result = (time.monotonic(), outcome)
        return outcome

    def check(self) -> dict[str, str]:
        """The last outcome (no I/O): ok, the error, or that the checks stalled."""
        result = self._result
        if result is None:
            return {"database": "starting"}
        at, outcome = result
        age = time.monotonic() - at
        if age > self.max_age:
            return {"database": f"error: 数据库 {age:.0f} 秒未应答检查 (check stalled)"}
        return {"database": outcome}

    def start(self) -> None:
        """Check once, then keep checking in a background thread."""
        self.refresh()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="readiness-db", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop checking and close the probe's connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 1)
            self._thread = None
        self.engine.dispose()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Alive (touches nothing: a busy service is alive)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "未就绪"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready when every check of the service passes (the checks are listed in the answer)."""
    probe: DatabaseProbe | None = request.app.state.database_probe
    checks: Checks = request.app.state.ready_checks
    results = {**(probe.check() if probe is not None else {}), **checks()}
    ok = all(value == "ok" for value in results.values())
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": results},
        status_code=200 if ok else 503,
    )


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    """Prometheus exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
