"""The tracker's HTTP API: task state and history, health and metrics."""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from services.tracker import metrics
from services.tracker.auth import Principal, authenticate, bearer_token
from services.tracker.orm import Report, Task, TaskUnit, Unit
from services.tracker.settings import TrackerSettings
from services.tracker.views import TaskDetail, TaskPage, TaskSummary, task_detail, task_summary
from services.tracker.workers import TrackerWorkers
from shared.clock import Clock
from shared.db import UnitOfWork

Light = Literal["green", "yellow", "red", "blue", "grey"]
SEES_EVERYTHING = frozenset({"supervisor", "admin", "leader", "operator"})


def get_session(request: Request) -> Iterator[Session]:
    """One unit of work per request; read-only routes never commit."""
    with UnitOfWork(request.app.state.session_factory) as uow:
        yield uow.session


SessionDep = Annotated[Session, Depends(get_session)]


def get_principal(
    request: Request, token: Annotated[str, Depends(bearer_token)], db: SessionDep
) -> Principal:
    """The authenticated caller."""
    return authenticate(db, token, now=request.app.state.clock.now())


PrincipalDep = Annotated[Principal, Depends(get_principal)]


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
        description="重点工作任务状态、进展报告历史与红黄绿灯。",
        lifespan=lifespan,
    )
    app.state.workers = workers
    app.state.session_factory = session_factory
    app.state.clock = clock

    @app.middleware("http")
    async def count_requests(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.REQUESTS.labels(
            getattr(route, "path", "unmatched"), str(response.status_code)
        ).inc()
        return response

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """Alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "未就绪"}})
    def readyz(db: SessionDep) -> JSONResponse:
        """Ready when the database answers and the report consumer runs."""
        checks: dict[str, str] = {}
        try:
            db.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        if run_workers:
            checks["consumer"] = (
                f"halted: {workers.halted}"
                if workers.halted
                else "ok"
                if workers.consumer.healthy
                else "connecting"
            )
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/v1/tasks/{code}",
        response_model=TaskDetail,
        tags=["tasks"],
        responses={401: {"description": "未认证"}, 404: {"description": "任务不存在"}},
    )
    def get_task(code: str, db: SessionDep, who: PrincipalDep) -> TaskDetail:
        """A task's state, milestones, targets and full report history."""
        task = db.execute(select(Task).where(Task.code == code)).scalar_one_or_none()
        if task is None or not _may_read(who, task):
            # Forbidden looks like unknown, so a unit cannot probe other units' task codes.
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"任务不存在 (no task {code})")
        reports = list(
            db.execute(
                select(Report).where(Report.task_id == task.id).order_by(Report.submitted_at)
            ).scalars()
        )
        return task_detail(task, reports)

    @app.get(
        "/v1/tasks",
        response_model=TaskPage,
        tags=["tasks"],
        responses={401: {"description": "未认证"}},
    )
    def list_tasks(
        db: SessionDep,
        who: PrincipalDep,
        unit: Annotated[str | None, Query(max_length=200, description="责任单位")] = None,
        light: Annotated[Light | None, Query(description="灯色")] = None,
        section: Annotated[str | None, Query(max_length=200, description="主要任务")] = None,
        leader: Annotated[str | None, Query(max_length=50, description="分管领导")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    ) -> TaskPage:
        """Tasks filtered by unit (lead or co-unit), light, section and leader; paginated."""
        query = select(Task)
        if who.role not in SEES_EVERYTHING:
            query = query.where(
                Task.id.in_(select(TaskUnit.task_id).where(TaskUnit.unit_id == who.unit_id))
            )
        if unit is not None:
            query = query.where(
                Task.id.in_(select(TaskUnit.task_id).join(Unit).where(Unit.name == unit))
            )
        if light is not None:
            query = query.where(Task.light == light)
        if section is not None:
            query = query.where(Task.section == section)
        if leader is not None:
            query = query.where(Task.leaders.contains([leader]))
        total = db.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        tasks = db.execute(query.order_by(Task.id).limit(limit).offset(offset)).scalars().all()
        return TaskPage(
            items=[TaskSummary(**task_summary(t)) for t in tasks],
            total=total,
            limit=limit,
            offset=offset,
        )

    return app


def _may_read(who: Principal, task: Task) -> bool:
    if who.role in SEES_EVERYTHING:
        return True
    return any(a.unit_id == who.unit_id for a in task.assignments)
