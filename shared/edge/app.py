"""The app factory of every Duban HTTP edge: guards, error envelope, limits, ops, audit.

A service builds its app with `create_edge_app`, includes its routers and puts its
resources on `app.state`; everything a request meets before and after its route is here:

  security headers → request counts → load shedding → audit of refusals → body limit and
  strict JSON → app

Load shedding: at most `max_requests_in_flight` requests in flight per process (the ops
routes exempt), and a request waits at most `db_pool_timeout_seconds` for a database
connection; past either bound it is answered 503 with Retry-After, never queued for long.
A service with a database passes its session factory as `database`: the edge then checks
the database for `/readyz` in the background on a connection of its own.

Text rules (NUL, control characters, …) are on the request models' fields
(`shared.textguard`), so a refusal names the field; the rate limit and the caller are
dependencies (`shared.edge.principal`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from prometheus_client import Counter
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from shared import ops
from shared.clock import Clock
from shared.db import engine_of
from shared.edge.audit import AuditTrail, Write
from shared.edge.errors import install_error_envelope
from shared.edge.middleware import LoadShedder, RequestCounter, SecurityHeaders
from shared.edge.ratelimit import RateLimit
from shared.httpguard import RequestGuard
from shared.ops import OPS_PATHS, Checks, DatabaseProbe
from shared.settings import CommonSettings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_edge_app(
    *,
    service: str,
    settings: CommonSettings,
    clock: Clock,
    requests: Counter,
    ready_checks: Checks | None,
    title: str,
    description: str,
    lifespan: Lifespan | None = None,
    rules: Iterable[type[Exception]] = (),
    audit: Write | None = None,
    larger_bodies: Iterable[tuple[str, int]] = (),
    database: sessionmaker[Session] | None = None,
) -> FastAPI:
    """A FastAPI app with the edge installed; the service adds its routers.

    `rules` are the service's rule-refusal exceptions (with `code`, `http_status`,
    `to_body()`); `audit` stores one refused-attempt record; `larger_bodies` raises the
    body limit under a path prefix (uploads); `database` is the service's session factory,
    whose database `/readyz` reports (checked by a `DatabaseProbe` while the app runs).
    """
    probe = (
        DatabaseProbe(
            engine_of(database),
            interval=settings.readiness_interval_seconds,
            timeout=settings.readiness_timeout_seconds,
        )
        if database is not None
        else None
    )

    @asynccontextmanager
    async def edge_lifespan(app: FastAPI) -> AsyncIterator[None]:
        if probe is not None:
            await run_in_threadpool(probe.start)
        try:
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield
        finally:
            if probe is not None:
                probe.stop()

    app = FastAPI(title=title, version="1", description=description, lifespan=edge_lifespan)
    app.state.database_probe = probe
    app.state.service = service
    app.state.clock = clock
    app.state.settings = settings
    app.state.ready_checks = ready_checks or _nothing_else
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
    app.add_middleware(
        LoadShedder,
        limit=settings.max_requests_in_flight,
        retry_after=settings.shed_retry_after_seconds,
        service=service,
        exempt=OPS_PATHS,
    )
    app.add_middleware(RequestCounter, requests=requests)
    app.add_middleware(SecurityHeaders)
    app.include_router(ops.router)
    return app


def _nothing_else() -> dict[str, str]:
    return {}


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


__all__ = ["Lifespan", "create_edge_app", "running"]
