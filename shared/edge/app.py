"""The app factory of every Duban HTTP edge: guards, error envelope, limits, ops, audit.

A service builds its app with `create_edge_app`, includes its routers and puts its
resources on `app.state`; everything a request meets before and after its route is here:

  security headers → request counts → audit of refusals → body limit and strict JSON → app

Text rules (NUL, control characters, …) are on the request models' fields
(`shared.textguard`), so a refusal names the field; the rate limit and the caller are
dependencies (`shared.edge.principal`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from prometheus_client import Counter
from sqlalchemy.orm import Session, sessionmaker

from shared import ops
from shared.clock import Clock
from shared.edge.audit import AuditTrail, Write
from shared.edge.errors import install_error_envelope
from shared.edge.middleware import RequestCounter, SecurityHeaders
from shared.edge.ratelimit import RateLimit
from shared.httpguard import RequestGuard
from shared.ops import Checks, database_check
from shared.settings import CommonSettings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_edge_app(
    *,
    service: str,
    settings: CommonSettings,
    clock: Clock,
    requests: Counter,
    ready_checks: Checks,
    title: str,
    description: str,
    lifespan: Lifespan | None = None,
    rules: Iterable[type[Exception]] = (),
    audit: Write | None = None,
    larger_bodies: Iterable[tuple[str, int]] = (),
) -> FastAPI:
    """A FastAPI app with the edge installed; the service adds its routers.

    `rules` are the service's rule-refusal exceptions (with `code`, `http_status`,
    `to_body()`); `audit` stores one refused-attempt record; `larger_bodies` raises the
    body limit under a path prefix (uploads).
    """
    app = FastAPI(title=title, version="1", description=description, lifespan=lifespan)
    app.state.service = service
    app.state.clock = clock
    app.state.settings = settings
    app.state.ready_checks = ready_checks
    app.state.limiter = RateLimit(
        per_minute=settings.rate_limit_per_minute,
        burst=settings.rate_limit_burst,
        namespace=service,
        storage_uri=settings.rate_limit_storage,
    )
    install_error_envelope(app, *rules)
    # Added innermost first: the last one added sees the request first.
    app.add_middleware(RequestGuard, max_bytes=settings.max_body_bytes, larger=tuple(larger_bodies))
    if audit is not None:
        app.add_middleware(AuditTrail, write=audit, clock=clock)
    app.add_middleware(RequestCounter, requests=requests)
    app.add_middleware(SecurityHeaders)
    app.include_router(ops.router)
    return app


def running(start: Callable[[], None] | None, stop: Callable[[], None] | None) -> Lifespan:
    """A lifespan that calls `start` as the app starts and `stop` as it stops (either may be
    None: nothing to do then)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if start is not None:
            start()
        try:
            yield
        finally:
            if stop is not None:
                stop()

    return lifespan


def database_ready(
    session_factory: sessionmaker[Session],
    workers: Callable[[], Mapping[str, Any]] | None = None,
) -> Checks:
    """Readiness of a service with a database: it answers, and the workers (if they run here)
    say they are ready."""

    def checks() -> dict[str, str]:
        results = database_check(session_factory)
        if workers is not None:
            results.update(workers())
        return results

    return checks


__all__ = ["Lifespan", "create_edge_app", "database_ready", "running"]
