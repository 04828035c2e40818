"""The tracker's HTTP API: task state and history, workflow, keys, health and metrics."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from services.tracker import audit, metrics
from services.tracker.domain.workflow import RuleViolation
from services.tracker.routes import actions, catalog, keys, ops, tasks
from services.tracker.settings import TrackerSettings
from services.tracker.usecases.workflow_actions import TaskNotFound
from services.tracker.workers import TrackerWorkers
from shared import httpguard
from shared.clock import Clock
from shared.httpguard import RateLimiter, RequestGuard, retry_after_header
from shared.ops import add_ops_routes, database_check

log = structlog.get_logger(__name__)

DB_RETRY_AFTER_SECONDS = 5


def create_app(
    settings: TrackerSettings,
    session_factory: sessionmaker[Session],
    clock: Clock,
    *,
    run_workers: bool = True,
) -> FastAPI:
    """Build the tracker app; its lifespan runs the background workers."""
    workers = TrackerWorkers(settings, session_factory, clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_workers:
            workers.start()
        try:
            yield
        finally:
            if run_workers:
                workers.stop()

    app = FastAPI(
        title="督办 tracker",
        version="1",
        description=(
            "重点工作任务状态、进展报告历史与红黄绿灯。责任单位只能查看和办理本单位的任务，"
            "分管领导只能查看其分管的任务；无权查看的任务与不存在的任务一样答 404。"
        ),
        lifespan=lifespan,
    )
    app.state.workers = workers
    app.state.run_workers = run_workers
    app.state.session_factory = session_factory
    app.state.clock = clock
    app.state.settings = settings
    app.state.limiter = RateLimiter(
        per_minute=settings.rate_limit_per_minute, burst=settings.rate_limit_burst
    )
    app.add_middleware(
        RequestGuard,
        max_bytes=settings.max_body_bytes,
        # Room for the multipart envelope around the largest document the route accepts.
        larger=[("/v1/catalog/imports", settings.max_upload_bytes + 1024 * 1024)],
    )
    audit.install(app, session_factory=session_factory, clock=clock)
    httpguard.install(app, service="tracker")

    def ready_checks() -> dict[str, str]:
        checks = database_check(session_factory)
        if run_workers:
            checks.update(workers.consumer.readiness())
        return checks

    add_ops_routes(
        app,
        requests=metrics.REQUESTS,
        checks=ready_checks,
        ready_doc="Ready when the database answers and the report consumer runs.",
    )

    @app.exception_handler(RuleViolation)
    async def rule_violation(request: Request, exc: RuleViolation) -> JSONResponse:
        request.state.audit_rule = exc.code
        return JSONResponse({"detail": exc.to_body()}, status_code=exc.http_status)

    @app.exception_handler(TaskNotFound)
    async def task_not_found(_request: Request, exc: TaskNotFound) -> JSONResponse:
        return JSONResponse({"detail": f"任务不存在 (no task {exc})"}, status_code=404)

    @app.exception_handler(OperationalError)
    async def database_unavailable(request: Request, exc: DBAPIError) -> JSONResponse:
        # Also a statement cancelled by the request timeout: the client may retry.
        log.warning("http.database_unavailable", path=request.url.path, error=type(exc).__name__)
        return JSONResponse(
            {"detail": "数据库暂不可用或查询超时，请稍后重试 (database unavailable)"},
            status_code=503,
            headers=retry_after_header(DB_RETRY_AFTER_SECONDS),
        )

    app.include_router(tasks.router)
    app.include_router(actions.router)
    app.include_router(catalog.router)
    app.include_router(keys.router)
    app.include_router(ops.router)
    return app
