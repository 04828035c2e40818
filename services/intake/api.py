"""Intake's HTTP API: authenticated progress reports, published to Kafka before answering.

The route and its dependencies are module-level and read the app's resources from
`app.state` (directory, follower, publisher, clock, settings), so each can be tested alone.
"""

import threading
import uuid
from collections.abc import Mapping
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials
from kafka import KafkaProducer
from kafka.errors import KafkaError
from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, field_validator

from services.intake import access, metrics
from services.intake.settings import IntakeSettings
from shared import topics
from shared.clock import Clock
from shared.directory import Directory, DirectoryFollower, InvalidKey
from shared.edge import create_edge_app
from shared.edge.app import running
from shared.edge.principal import RateLimited, bearer, bearer_token, enforce_rate_limit
from shared.events import (
    ApiKeyPublished,
    ProgressReport,
    ProgressReportSubmitted,
    encode,
)
from shared.httpguard import error_responses
from shared.kafka import ensure_topics, make_producer, publish
from shared.textguard import SINGLE_LINE

log = structlog.get_logger(__name__)
# Who did what, when, from where: intake keeps no database, so its audit trail is this log.
audit_log = structlog.get_logger("duban.audit")

# Idempotency keys map to event ids deterministically, so a retry needs no intake database.
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c1d1e-5b0b-4c61-9d53-6475626e0001")

IdempotencyKey = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
]


# The report's fields are the event's (`shared.events.ProgressReport`); like every request
# body, and like the event when it is built, it refuses fields it does not define.
class ReportRequest(ProgressReport):
    """A progress report for one task; the reporting unit is the key's, never the body's."""

    task_code: Annotated[str, Field(max_length=120, description="任务编号"), SINGLE_LINE]

    @field_validator("cites")
    @classmethod
    def _distinct(cls, cites: list[uuid.UUID]) -> list[uuid.UUID]:
        # A request naming a part twice is a client's mistake; the event itself stays tolerant.
        if len(set(cites)) != len(cites):
            raise ValueError("同一报送被引用了两次 (a part is cited twice)")
        return cites

    def report(self) -> ProgressReport:
        """The report as the event carries it."""
        return ProgressReport.model_validate(self.model_dump(exclude={"task_code"}))


class Receipt(BaseModel):
    """The broker has the report; the tracker will apply it."""

    event_id: uuid.UUID
    task_code: str
    status: str = Field(default="accepted", description="已受理")
    accepted_at: AwareDatetime


class Publisher:
    """Holds one producer, created on first use, since the broker may be down at start-up."""

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


def record(
    request: Request,
    *,
    outcome: str,
    status_code: int,
    key: ApiKeyPublished | None = None,
    claimed: str | None = None,
    task_code: str | None = None,
    reason: str | None = None,
    event_id: uuid.UUID | None = None,
) -> None:
    """One line of intake's audit trail."""
    clock: Clock = request.app.state.clock
    audit_log.info(
        "audit",
        service="intake",
        action="report.submit",
        outcome=outcome,
        status=status_code,
        reason=reason,
        key_id=key.key_id if key else claimed,
        role=key.role if key else None,
        unit=key.unit if key else None,
        method=request.method,
        route="/v1/reports",
        object=task_code,
        event_id=str(event_id) if event_id else None,
        client=request.client.host if request.client else None,
        at=clock.now().isoformat(),
    )


def reject(
    request: Request,
    code: int,
    reason: str,
    detail: str,
    *,
    key: ApiKeyPublished | None = None,
    claimed: str | None = None,
    task_code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> HTTPException:
    """Count and audit a refusal; the HTTPException to raise for it."""
    metrics.REPORTS_REJECTED.labels(reason).inc()
    if code in (401, 403, 404, 409, 429):
        record(
            request,
            outcome="denied" if code in (401, 403) else "refused",
            status_code=code,
            key=key,
            claimed=claimed,
            task_code=task_code,
            reason=reason,
        )
    return HTTPException(code, detail=detail, headers=dict(headers) if headers else None)


def unit_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiKeyPublished:
    """The caller's unit key: authenticated, within its rate limit, of a unit."""
    settings: IntakeSettings = request.app.state.settings
    follower: DirectoryFollower = request.app.state.follower
    directory: Directory = request.app.state.directory
    clock: Clock = request.app.state.clock
    try:
        token = bearer_token(request, credentials)
    except HTTPException as exc:
        raise reject(request, 401, "unauthenticated", exc.detail, headers=exc.headers) from exc
    if not follower.caught_up.is_set():
        raise reject(
            request,
            503,
            "directory_loading",
            "服务启动中，请稍后重试 (directory loading)",
            headers={"Retry-After": str(settings.retry_after_seconds)},
        )
    try:
        key = directory.authenticate(token, now=clock.now())
    except InvalidKey as exc:
        raise reject(
            request,
            401,
            "unauthenticated",
            str(exc),
            claimed=request.state.claimed_key_id,
            headers={"WWW-Authenticate": "Bearer"},
        ) from exc
    # Counted before authorisation, so probing other units' tasks spends the same budget.
    try:
        enforce_rate_limit(request, key.key_id)
    except RateLimited as exc:
        raise reject(
            request,
            429,
            "rate_limited",
            "请求过于频繁，请稍后重试 (rate limit exceeded)",
            key=key,
            headers=exc.headers,
        ) from exc
    refusal = access.may_report(key)
    if refusal is not None:
        raise reject(request, refusal.status, refusal.reason, refusal.message, key=key)
    return key


router = APIRouter(tags=["reports"])


@router.post(
    "/v1/reports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Receipt,
    responses=error_responses(401, 403, 404, 409, 413, 422, 429, 503),
)
def submit_report(
    request: Request,
    body: ReportRequest,
    key: Annotated[ApiKeyPublished, Depends(unit_key)],
    idempotency_key: Annotated[IdempotencyKey | None, Header()] = None,
) -> Receipt:
    """Submit a progress report; 202 means the broker has durably accepted it."""
    directory: Directory = request.app.state.directory
    publisher: Publisher = request.app.state.publisher
    settings: IntakeSettings = request.app.state.settings
    clock: Clock = request.app.state.clock
    assignment = directory.task(body.task_code)
    refusal = access.may_report_on(key, body.task_code, assignment)
    if refusal is not None:
        raise reject(
            request,
            refusal.status,
            refusal.reason,
            refusal.message,
            key=key,
            task_code=body.task_code,
        )
    refusal = access.may_cite(key, assignment) if body.cites else None
    if refusal is not None:
        metrics.REPORTS_REJECTED.labels(refusal.reason).inc()
        problem = {"loc": ["body", "cites"], "msg": refusal.message, "type": refusal.reason}
        raise HTTPException(refusal.status, detail=[problem])
    now = clock.now()
    event_id = (
        uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{key.unit}\x00{idempotency_key}")
        if idempotency_key
        else uuid.uuid4()
    )
    event = ProgressReportSubmitted(
        event_id=event_id,
        occurred_at=now,
        task_code=body.task_code,
        unit=key.unit or "",
        key_id=key.key_id,
        report=body.report(),
    )
    try:
        publisher.publish(body.task_code, encode(event))
    except (KafkaError, TimeoutError) as exc:
        log.warning("intake.publish_failed", error=str(exc), task=body.task_code)
        raise reject(
            request,
            503,
            "broker_unavailable",
            "消息队列暂不可用，请稍后用同一 Idempotency-Key 重试 (broker unavailable)",
            key=key,
            task_code=body.task_code,
            headers={"Retry-After": str(settings.retry_after_seconds)},
        ) from exc
    metrics.REPORTS_ACCEPTED.inc()
    record(
        request,
        outcome="ok",
        status_code=202,
        key=key,
        task_code=body.task_code,
        event_id=event_id,
    )
    return Receipt(event_id=event_id, task_code=body.task_code, accepted_at=now)


def directory_check(request_app: FastAPI) -> dict[str, str]:
    """Ready once the directory has been read up to date."""
    follower: DirectoryFollower = request_app.state.follower
    return follower.readiness()


def create_app(settings: IntakeSettings, clock: Clock, *, follow_directory: bool = True) -> FastAPI:
    """Build the intake app; its lifespan follows the directory topic."""
    directory = Directory()
    follower = DirectoryFollower(settings, directory)
    publisher = Publisher(settings)

    def start() -> None:
        try:
            ensure_topics(settings, topics.ALL)
        except KafkaError as exc:
            log.warning("intake.topics_unavailable", error=str(exc))
        follower.start()

    def stop() -> None:
        if follow_directory:
            follower.stop()
        publisher.close()

    app = create_edge_app(
        service="intake",
        settings=settings,
        clock=clock,
        requests=metrics.REQUESTS,
        ready_checks=lambda: directory_check(app),
        title="督办 intake",
        description=(
            "责任单位报送重点工作进展。报告经消息队列确认后返回 202 回执。"
            "报送单位取自 API 密钥，不取自请求体。"
        ),
        lifespan=running(start if follow_directory else None, stop),
    )
    app.state.directory = directory
    app.state.follower = follower
    app.state.publisher = publisher
    app.include_router(router)
    return app


__all__ = ["IDEMPOTENCY_NAMESPACE", "ReportRequest", "create_app", "router", "submit_report"]
