"""Intake's HTTP API: authenticated progress reports, published to Kafka before answering."""

import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from kafka import KafkaProducer
from kafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from starlette.types import ASGIApp, Receive, Scope, Send

from services.intake import metrics
from services.intake.settings import IntakeSettings
from shared import topics
from shared.clock import Clock
from shared.directory import Directory, DirectoryFollower, InvalidKey
from shared.events import ApiKeyPublished, ProgressReport, ProgressReportSubmitted, encode
from shared.kafka import ensure_topics, make_producer, publish

log = structlog.get_logger(__name__)

# Idempotency keys map to event ids deterministically, so a retry needs no intake database.
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c1d1e-5b0b-4c61-9d53-6475626e0001")

IdempotencyKey = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
]


class ReportRequest(ProgressReport):
    """A progress report for one task."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task_code: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)
    ]


class Receipt(BaseModel):
    """The broker has the report; the tracker will apply it."""

    event_id: uuid.UUID
    task_code: str
    status: str = Field(default="accepted", description="已受理")
    accepted_at: AwareDatetime


class BodyTooLarge(Exception):
    """The request body exceeded the configured limit."""


class BodyLimit:
    """ASGI middleware refusing bodies over a limit before they are read into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except BodyTooLarge:
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"请求体过大，上限 {self.max_bytes} 字节 (body too large)"},
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
        )
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Any:
    return {"type": "http.disconnect"}


class Publisher:
    """Holds one producer, recreated after the broker was unreachable."""

    def __init__(self, settings: IntakeSettings) -> None:
        self.settings = settings
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def publish(self, key: str, value: bytes) -> None:
        """Publish and wait for acks=all; raises KafkaError if the broker did not ack."""
        with self._lock:
            if self._producer is None:
                self._producer = make_producer(self.settings)
            producer = self._producer
        publish(
            producer,
            topics.PROGRESS_REPORTS,
            key,
            value,
            timeout=self.settings.publish_timeout_seconds,
        )

    def close(self) -> None:
        """Flush and close the producer."""
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None


def create_app(settings: IntakeSettings, clock: Clock, *, follow_directory: bool = True) -> FastAPI:
    """Build the intake app; its lifespan follows the directory topic."""
    directory = Directory()
    follower = DirectoryFollower(settings, directory)
    publisher = Publisher(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if follow_directory:
            try:
                ensure_topics(settings, topics.ALL)
            except KafkaError as exc:
                log.warning("intake.topics_unavailable", error=str(exc))
            follower.start()
        try:
            yield
        finally:
            if follow_directory:
                follower.stop()
            publisher.close()

    app = FastAPI(
        title="督办 intake",
        version="1",
        description="责任单位报送重点工作进展。报告经消息队列确认后返回 202 回执。",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.state.directory = directory
    app.state.follower = follower
    bearer = HTTPBearer(auto_error=False)

    @app.middleware("http")
    async def count_requests(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.REQUESTS.labels(
            getattr(route, "path", "unmatched"), str(response.status_code)
        ).inc()
        return response

    def reject(code: int, reason: str, detail: str, **headers: str) -> HTTPException:
        metrics.REPORTS_REJECTED.labels(reason).inc()
        return HTTPException(code, detail=detail, headers=headers or None)

    def unit_key(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> ApiKeyPublished:
        if credentials is None:
            raise reject(
                401,
                "unauthenticated",
                "缺少 API 密钥 (missing bearer API key)",
                **{"WWW-Authenticate": "Bearer"},
            )
        if not follower.caught_up.is_set():
            raise reject(
                503,
                "directory_loading",
                "服务启动中，请稍后重试 (directory loading)",
                **{"Retry-After": str(settings.retry_after_seconds)},
            )
        try:
            key = directory.authenticate(credentials.credentials, now=clock.now())
        except InvalidKey as exc:
            raise reject(
                401, "unauthenticated", str(exc), **{"WWW-Authenticate": "Bearer"}
            ) from exc
        if key.role != "unit" or key.unit is None:
            raise reject(
                403, "forbidden", "只有责任单位的密钥可以报送进展 (only unit keys may report)"
            )
        return key

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """Alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "未就绪"}})
    def readyz() -> JSONResponse:
        """Ready once the directory has been read up to date."""
        ready = follower.caught_up.is_set()
        return JSONResponse(
            {
                "status": "ready" if ready else "not ready",
                "checks": {"directory": "ok" if ready else "loading"},
            },
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/v1/reports",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Receipt,
        tags=["reports"],
        responses={
            401: {"description": "未认证"},
            403: {"description": "无权报送该任务"},
            404: {"description": "任务不存在"},
            409: {"description": "任务已不接受报送"},
            413: {"description": "请求体过大"},
            503: {"description": "消息队列不可用，请按 Retry-After 重试"},
        },
    )
    def submit_report(
        body: ReportRequest,
        key: Annotated[ApiKeyPublished, Depends(unit_key)],
        idempotency_key: Annotated[IdempotencyKey | None, Header()] = None,
    ) -> Receipt:
        """Submit a progress report; 202 means the broker has durably accepted it."""
        assignment = directory.task(body.task_code)
        if assignment is None:
            raise reject(404, "unknown_task", f"任务不存在 (unknown task {body.task_code})")
        if key.unit not in (*assignment.lead_units, *assignment.co_units):
            raise reject(
                403,
                "not_responsible",
                f"{key.unit} 不是该任务的责任单位 (unit is not responsible for this task)",
            )
        if not assignment.accepting_reports:
            raise reject(
                409,
                "not_accepting",
                "该任务已申请销号或已销号，不再接受报送 (task no longer accepts reports)",
            )
        now = clock.now()
        event_id = (
            uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{key.unit}\x00{idempotency_key}")
            if idempotency_key
            else uuid.uuid4()
        )
        report = ProgressReport.model_validate(body.model_dump(exclude={"task_code"}))
        event = ProgressReportSubmitted(
            event_id=event_id,
            occurred_at=now,
            task_code=body.task_code,
            unit=key.unit or "",
            key_id=key.key_id,
            report=report,
        )
        try:
            publisher.publish(body.task_code, encode(event))
        except (KafkaError, TimeoutError) as exc:
            log.warning("intake.publish_failed", error=str(exc), task=body.task_code)
            raise reject(
                503,
                "broker_unavailable",
                "消息队列暂不可用，请稍后用同一 Idempotency-Key 重试 (broker unavailable)",
                **{"Retry-After": str(settings.retry_after_seconds)},
            ) from exc
        metrics.REPORTS_ACCEPTED.inc()
        log.info("report.accepted", event_id=str(event_id), task=body.task_code, unit=key.unit)
        return Receipt(event_id=event_id, task_code=body.task_code, accepted_at=now)

    return app


__all__ = ["IDEMPOTENCY_NAMESPACE", "ReportRequest", "create_app"]
