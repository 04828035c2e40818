"""The tracker's HTTP API: task state and history, workflow, keys, health and metrics."""

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from services.tracker import audit, metrics
from services.tracker.domain.workflow import RuleViolation
from services.tracker.policy.supervision import in_force, policy_summary
from services.tracker.routes import actions, catalog, decisions, keys, ops, tasks
from services.tracker.settings import TrackerSettings
from services.tracker.usecases.workflow_actions import TaskNotFound
from services.tracker.workers import TrackerWorkers
from shared.clock import Clock
from shared.edge import create_edge_app
from shared.edge.app import running
from shared.workcal import load_calendar

log = structlog.get_logger(__name__)


async def task_not_found(_request: Request, exc: Exception) -> JSONResponse:
    """A task named by an event or an action that the tracker does not hold."""
    return JSONResponse({"detail": f"任务不存在 (no task {exc})"}, status_code=404)


def create_app(
    settings: TrackerSettings,
    session_factory: sessionmaker[Session],
    clock: Clock,
    *,
    run_workers: bool = True,
    workers_session_factory: sessionmaker[Session] | None = None,
) -> FastAPI:
    """Build the tracker app; its lifespan runs the background workers.

    The workers use `workers_session_factory` (their own pool) if given, else the request one.
    Raises SupervisionPolicyError or CalendarError (naming file and line) if the policy file
    or the calendar override file is bad: the service does not start on a bad rule.
    """
    policy = in_force().install(
        settings.supervision_policy, load_calendar(settings.calendar_overrides)
    )
    log.info("supervision.policy_in_force", **policy_summary(policy))
    workers = TrackerWorkers(settings, workers_session_factory or session_factory, clock)

    app = create_edge_app(
        service="tracker",
        settings=settings,
        clock=clock,
        requests=metrics.REQUESTS,
        # Ready when the database answers (the edge checks it) and the report consumer runs.
        ready_checks=workers.consumer.readiness if run_workers else None,
        title="督办 tracker",
        description=(
            "重点工作任务状态、进展报告历史与红黄绿灯。责任单位只能查看和办理本单位的任务，"
            "分管领导只能查看其分管的任务；无权查看的任务与不存在的任务一样答 404。"
        ),
        lifespan=running(workers.start, workers.stop) if run_workers else None,
        rules=[RuleViolation],
        audit=audit.writer(session_factory),
        database=session_factory,
        # Room for the multipart envelope around the largest document the route accepts.
        larger_bodies=[("/v1/catalog/imports", settings.max_upload_bytes + 1024 * 1024)],
    )
    app.state.workers = workers
    app.state.run_workers = run_workers
    app.state.session_factory = session_factory
    app.add_exception_handler(TaskNotFound, task_not_found)
    for module in (tasks, actions, decisions, catalog, keys, ops):
        app.include_router(module.router)
    return app
