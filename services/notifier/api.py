"""The notifier's HTTP API: the notification log, health and metrics."""

import datetime as dt
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated

import structlog
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from kafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from services.notifier import metrics
from services.notifier.consumer import make_task_event_handler
from services.notifier.service import list_notifications
from services.notifier.settings import NotifierSettings
from shared import topics
from shared.clock import Clock
from shared.db import UnitOfWork
from shared.directory import Directory, DirectoryFollower, InvalidKey
from shared.events import ApiKeyPublished
from shared.kafka import ConsumerHalted, ConsumerLoop, ensure_topics

log = structlog.get_logger(__name__)
SEES_EVERYTHING = frozenset({"supervisor", "admin", "operator", "leader"})


class NotificationView(BaseModel):
    """One notification and its delivery outcome."""

    id: uuid.UUID
    task_codes: list[str]
    level: int
    level_name: str
    recipient_role: str
    recipient: str
    channel: str
    subject: str
    body: str
    status: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None


class NotificationPage(BaseModel):
    """A page of notifications, newest first."""

    items: list[NotificationView]
    limit: int
    offset: int


def get_session(request: Request) -> Iterator[Session]:
    """One unit of work per request; read-only routes never commit."""
    with UnitOfWork(request.app.state.session_factory) as uow:
        yield uow.session


SessionDep = Annotated[Session, Depends(get_session)]


def create_app(
    settings: NotifierSettings,
    session_factory: sessionmaker[Session],
    clock: Clock,
    *,
    run_workers: bool = True,
) -> FastAPI:
    """Build the notifier app; its lifespan runs the task-event consumer."""
    directory = Directory()
    follower = DirectoryFollower(settings, directory)
    stop_event = threading.Event()
    consumer = ConsumerLoop(
        settings=settings,
        topic=topics.TASK_EVENTS,
        group_id=settings.consumer_group,
        handler=make_task_event_handler(
            session_factory, clock, supervising_office=settings.supervising_office
        ),
        stop_event=stop_event,
    )
    state: dict[str, str | None] = {"halted": None}

    def consume() -> None:
        try:
            consumer.run()
        except ConsumerHalted as exc:
            state["halted"] = str(exc)
            log.critical("consumer.halted", reason=str(exc))

    thread = threading.Thread(target=consume, name="task-event-consumer", daemon=True)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_workers:
            try:
                ensure_topics(settings, topics.ALL)
            except KafkaError as exc:
                log.warning("notifier.topics_unavailable", error=str(exc))
            follower.start()
            thread.start()
        try:
            yield
        finally:
            if run_workers:
                stop_event.set()
                thread.join(timeout=15)
                follower.stop()

    app = FastAPI(
        title="督办 notifier",
        version="1",
        description="催办、督办、通报的发送记录。",
        lifespan=lifespan,
    )
    app.state.consumer = consumer
    app.state.session_factory = session_factory
    app.state.clock = clock
    bearer = HTTPBearer(auto_error=False)

    def principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> ApiKeyPublished:
        if credentials is None:
            raise HTTPException(
                401,
                "缺少 API 密钥 (missing bearer API key)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            return directory.authenticate(credentials.credentials, now=clock.now())
        except InvalidKey as exc:
            raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc

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
        """Ready when the database answers and the consumer runs."""
        checks: dict[str, str] = {}
        try:
            db.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        if run_workers:
            checks["consumer"] = (
                f"halted: {state['halted']}"
                if state["halted"]
                else "ok"
                if consumer.healthy
                else "connecting"
            )
            checks["directory"] = "ok" if follower.caught_up.is_set() else "loading"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/v1/notifications",
        response_model=NotificationPage,
        tags=["notifications"],
        responses={401: {"description": "未认证"}},
    )
    def get_notifications(
        db: SessionDep,
        who: Annotated[ApiKeyPublished, Depends(principal)],
        recipient: Annotated[str | None, Query(max_length=200, description="接收单位")] = None,
        task: Annotated[str | None, Query(max_length=120, description="任务编号")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    ) -> NotificationPage:
        """The notification log; a unit sees only what was sent to it."""
        if who.role not in SEES_EVERYTHING:
            recipient = who.unit
        rows = list_notifications(
            db, recipient=recipient, task_code=task, limit=limit, offset=offset
        )
        return NotificationPage(
            items=[NotificationView.model_validate(r, from_attributes=True) for r in rows],
            limit=limit,
            offset=offset,
        )

    return app
