"""The tracker's HTTP API: task state and history, workflow, keys, health and metrics."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from services.tracker import audit, metrics
from services.tracker.domain.workflow import RuleViolation
from services.tracker.routes import actions, catalog, keys, ops, tasks
from services.tracker.settings import TrackerSettings
from services.tracker.usecases.workflow_actions import TaskNotFound
from services.tracker.workers import TrackerWorkers
from shared.clock import Clock
from shared.edge import create_edge_app
from shared.edge.app import database_ready, running


async def task_not_found(_request: Request, exc: Exception) -> JSONResponse:
    """A task named by an event or an action that the tracker does not hold."""
    return JSONResponse({"detail": f"任务不存在 (no task {exc})"}, status_code=404)


def create_app(
    settings: TrackerSettings,
    session_factory: sessionmaker[Session],
    clock: Clock,
    *,
    run_workers: bool = True,
) -> FastAPI:
    """Build the tracker app; its lifespan runs the background workers."""
    workers = TrackerWorkers(settings, session_factory, clock)

    app = create_edge_app(
        service="tracker",
        settings=settings,
        clock=clock,
        requests=metrics.REQUESTS,
        # Ready when the database answers and the report consumer runs.
        ready_checks=database_ready(
            session_factory, workers.consumer.readiness if run_workers else None
        ),
        title="督办 tracker",
        description=(
            "重点工作任务状态、进展报告历史与红黄绿灯。责任单位只能查看和办理本单位的任务，"
            "分管领导只能查看其分管的任务；无权查看的任务与不存在的任务一样答 404。"
        ),
        lifespan=running(workers.start, workers.stop) if run_workers else None,
        rules=[RuleViolation],
        audit=audit.writer(session_factory),
        # Room for the multipart envelope around the largest document the route accepts.
        larger_bodies=[("/v1/catalog/imports", settings.max_upload_bytes + 1024 * 1024)],
    )
    app.state.workers = workers
    app.state.run_workers = run_workers
    app.state.session_factory = session_factory
    app.add_exception_handler(TaskNotFound, task_not_found)
    for module in (tasks, actions, catalog, keys, ops):
        app.include_router(module.router)
    return app
