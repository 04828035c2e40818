"""The notifier's HTTP API: the notification log, 签收, snoozes (and their cancelling), health
and metrics.

Routes and dependencies are module-level and read the app's resources from `app.state`
(session factory, workers, clock), so each can be tested alone; the edge
(`shared.edge`) gives them the guards, rate limit, audit trail and error envelope.
"""

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping
from typing import Annotated, Literal

import structlog
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session, sessionmaker

from services.notifier import audit, metrics
from services.notifier.adapters.sql import SqlUnitOfWork
from services.notifier.channels.base import Channel
from services.notifier.escalation.policy import ChannelKind
from services.notifier.refusals import Refused
from services.notifier.settings import NotifierSettings
from services.notifier.usecases import escalations
from services.notifier.workers import NotifierWorkers
from shared.clock import Clock
from shared.directory import InvalidKey
from shared.edge import create_edge_app
from shared.edge.app import running
from shared.edge.principal import principal_dependency, unauthorized
from shared.events import ApiKeyPublished
from shared.httpguard import error_responses
from shared.textguard import MULTI_LINE, PATH_SEGMENT, SINGLE_LINE

log = structlog.get_logger(__name__)

TaskCode = Annotated[str, Path(min_length=1, max_length=120, description="任务编号"), PATH_SEGMENT]
Note = Annotated[str, Field(max_length=500), MULTI_LINE]
Status = Literal["pending", "delivered", "failed", "cancelled"]


class NotificationView(BaseModel):
    """One notification (task, level, recipient, channel, window) and its delivery outcome."""

    id: uuid.UUID
    notification_id: uuid.UUID
    digest_id: uuid.UUID | None
    task_codes: list[str]
    level: int
    level_name: str
    sequence: int
    action: str
    recipient_role: str
    recipient: str
    channel: str
    subject: str
    body: str
    status: str
    attempts: int
    last_error: str | None
    window_start: dt.datetime
    respond_by: dt.date | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    not_before: dt.datetime | None = Field(
        description="免打扰时段：不早于此时发送（为空则即时发送）"
    )
    held: bool = Field(description="待发：按免打扰时段暂缓，到 not_before 时发送")


class NotificationPage(BaseModel):
    """A page of notifications, newest first."""

    items: list[NotificationView]
    total: int
    limit: int
    offset: int


class AcknowledgementIn(BaseModel):
    """A 签收: the level acknowledged, and an optional note."""

    model_config = ConfigDict(extra="forbid")

    level: int = Field(ge=1, le=20, description="签收的督办级别 (1 催办, 2 督办, 3 通报)")
    note: Note | None = Field(default=None, description="签收说明")


class AcknowledgementView(BaseModel):
    """A recorded 签收."""

    id: uuid.UUID
    task_code: str
    level: int
    by_role: str
    by_name: str
    note: str | None
    acknowledged_at: dt.datetime


class SnoozeIn(BaseModel):
    """A snooze: until when, why, and optionally only one level."""

    model_config = ConfigDict(extra="forbid")

    until: AwareDatetime = Field(description="暂停至（须带时区）")
    reason: Note = Field(description="暂停原因")
    level: int | None = Field(default=None, ge=1, le=20, description="只暂停这一级；不填则全部")


class SnoozeView(BaseModel):
    """A recorded snooze."""

    id: uuid.UUID
    task_code: str
    level: int | None
    until: dt.datetime
    reason: str
    by_role: str
    by_name: str
    created_at: dt.datetime
    cancelled_at: dt.datetime | None = Field(default=None, description="取消时间；未取消为空")
    cancelled_by: str | None = Field(default=None, description="取消人")


class EscalationsView(BaseModel):
    """Everything escalation did about one task, oldest first (for the task's timeline)."""

    task_code: str
    light: str | None
    notifications: list[NotificationView]
    acknowledgements: list[AcknowledgementView]
    snoozes: list[SnoozeView]


class DigestView(BaseModel):
    """One message as sent to one recipient on one channel."""

    id: uuid.UUID
    recipient_role: str
    recipient: str
    channel: str
    window_start: dt.datetime
    level: int
    level_name: str
    task_codes: list[str]
    subject: str
    body: str
    status: str
    attempts: int
    rounds: int
    last_error: str | None
    next_attempt_at: dt.datetime | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    failed_at: dt.datetime | None


def get_uow(request: Request) -> Iterator[SqlUnitOfWork]:
    """One unit of work per request; routes that write commit it themselves."""
    with SqlUnitOfWork(request.app.state.session_factory) as uow:
        yield uow


UowDep = Annotated[SqlUnitOfWork, Depends(get_uow)]


def get_workers(request: Request) -> NotifierWorkers:
    """The app's workers: the directory, the policy, the escalation ticks."""
    workers: NotifierWorkers = request.app.state.workers
    return workers


WorkersDep = Annotated[NotifierWorkers, Depends(get_workers)]


def get_now(request: Request) -> dt.datetime:
    """The service clock's now, read once per request."""
    now: dt.datetime = request.app.state.clock.now()
    return now


NowDep = Annotated[dt.datetime, Depends(get_now)]


def authenticate(request: Request, token: str) -> ApiKeyPublished:
    """The directory's key for `token`, or 401."""
    workers = get_workers(request)
    try:
        return workers.directory.authenticate(token, now=get_now(request))
    except InvalidKey as exc:
        raise unauthorized(str(exc)) from exc


Who = Annotated[ApiKeyPublished, Depends(principal_dependency(authenticate))]

READ = error_responses(401, 403, 404, 422, 429, 503)
WRITE = error_responses(401, 403, 404, 409, 413, 422, 429, 503)

router = APIRouter()

Recipient = Annotated[str | None, Query(max_length=200, description="接收单位"), SINGLE_LINE]
TaskFilter = Annotated[str | None, Query(max_length=120, description="任务编号"), SINGLE_LINE]


@router.get(
    "/v1/notifications",
    response_model=NotificationPage,
    tags=["notifications"],
    responses=READ,
)
def get_notifications(
    db: UowDep,
    who: Who,
    recipient: Recipient = None,
    task: TaskFilter = None,
    level: Annotated[int | None, Query(ge=1, le=20, description="督办级别")] = None,
    status: Annotated[Status | None, Query(description="投递结果")] = None,
    channel: Annotated[ChannelKind | None, Query(description="通道")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> NotificationPage:
    """The notification log; a unit sees only what was sent to it."""
    rows, total = escalations.list_notifications(
        db,
        who=who,
        recipient=recipient,
        task_code=task,
        level=level,
        status=status,
        channel=channel.value if channel is not None else None,
        limit=limit,
        offset=offset,
    )
    return NotificationPage(
        items=[NotificationView.model_validate(r, from_attributes=True) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/v1/digests/{digest_id}",
    response_model=DigestView,
    tags=["notifications"],
    responses=READ,
)
def get_digest(db: UowDep, who: Who, digest_id: uuid.UUID) -> DigestView:
    """One message as sent (several tasks for one recipient on one channel)."""
    row = escalations.get_digest(db, digest_id=digest_id, who=who)
    return DigestView.model_validate(row, from_attributes=True)


def _commit_write(
    request: Request,
    db: SqlUnitOfWork,
    who: ApiKeyPublished,
    now: dt.datetime,
    workers: NotifierWorkers,
    event: str,
    **fields: object,
) -> None:
    """Audit a 201 write in its own transaction, commit, log it, then ask for an escalation
    tick (which runs in a transaction of its own and must see the change)."""
    audit.record_write(db.session, request, principal=who, now=now, status=201)
    db.commit()
    log.info(event, **fields)
    workers.request_tick()


@router.post(
    "/v1/tasks/{code}/acknowledgements",
    response_model=AcknowledgementView,
    status_code=201,
    tags=["escalation"],
    responses=WRITE,
)
def post_acknowledgement(
    request: Request,
    db: UowDep,
    who: Who,
    workers: WorkersDep,
    now: NowDep,
    code: TaskCode,
    body: AcknowledgementIn,
) -> AcknowledgementView:
    """签收 one level of a task: its repeats stop (re-armed if no report follows)."""
    ack = escalations.acknowledge(
        db,
        task_code=code,
        level=body.level,
        note=body.note,
        who=who,
        policy=workers.policy,
        now=now,
    )
    view = AcknowledgementView.model_validate(ack, from_attributes=True)
    _commit_write(
        request,
        db,
        who,
        now,
        workers,
        "escalation.acknowledged",
        task=code,
        level=body.level,
        by=ack.by_name,
    )
    return view


@router.post(
    "/v1/tasks/{code}/snoozes",
    response_model=SnoozeView,
    status_code=201,
    tags=["escalation"],
    responses=WRITE,
)
def post_snooze(
    request: Request,
    db: UowDep,
    who: Who,
    workers: WorkersDep,
    now: NowDep,
    code: TaskCode,
    body: SnoozeIn,
) -> SnoozeView:
    """Silence a task (or one level) until a time, for a recorded reason; office only."""
    row = escalations.snooze(
        db,
        task_code=code,
        level=body.level,
        until=body.until,
        reason=body.reason,
        who=who,
        policy=workers.policy,
        now=now,
        task_known_elsewhere=workers.directory.task(code) is not None,
    )
    view = SnoozeView.model_validate(row, from_attributes=True)
    _commit_write(
        request,
        db,
        who,
        now,
        workers,
        "escalation.snoozed",
        task=code,
        level=body.level,
        until=body.until.isoformat(),
    )
    return view


@router.delete(
    "/v1/tasks/{code}/snoozes/{snooze_id}",
    response_model=SnoozeView,
    tags=["escalation"],
    responses=WRITE,
)
def cancel_snooze(
    request: Request,
    db: UowDep,
    who: Who,
    workers: WorkersDep,
    now: NowDep,
    code: TaskCode,
    snooze_id: uuid.UUID,
) -> SnoozeView:
    """Cancel a snooze before it ends (office only): escalation resumes at the next tick."""
    row = escalations.cancel_snooze(
        db, task_code=code, snooze_id=snooze_id, who=who, policy=workers.policy, now=now
    )
    view = SnoozeView.model_validate(row, from_attributes=True)
    audit.record_write(db.session, request, principal=who, now=now, status=200)
    db.commit()
    log.info("escalation.snooze_cancelled", task=code, snooze=str(snooze_id), by=row.cancelled_by)
    workers.request_tick()
    return view


@router.get(
    "/v1/tasks/{code}/escalations",
    response_model=EscalationsView,
    tags=["escalation"],
    responses=READ,
)
def get_escalations(db: UowDep, who: Who, code: TaskCode) -> EscalationsView:
    """Notifications, 签收 and snoozes of one task, for the task's timeline."""
    found = escalations.task_escalations(db, task_code=code, who=who)
    return EscalationsView(
        task_code=found.task_code,
        light=found.light,
        notifications=[
            NotificationView.model_validate(r, from_attributes=True) for r in found.notifications
        ],
        acknowledgements=[
            AcknowledgementView.model_validate(r, from_attributes=True)
            for r in found.acknowledgements
        ],
        snoozes=[SnoozeView.model_validate(r, from_attributes=True) for r in found.snoozes],
    )


def create_app(
    settings: NotifierSettings,
    session_factory: sessionmaker[Session],
    clock: Clock,
    *,
    run_workers: bool = True,
    workers_session_factory: sessionmaker[Session] | None = None,
    channels: Mapping[ChannelKind, Channel] | None = None,
) -> FastAPI:
    """Build the notifier app; raises PolicyError, ContactsError or CalendarError if a config
    file is bad.

    The workers use `workers_session_factory` (their own pool) if given, else the request one.
    """
    workers = NotifierWorkers(
        settings, workers_session_factory or session_factory, clock, channels=channels
    )

    app = create_edge_app(
        service="notifier",
        settings=settings,
        clock=clock,
        requests=metrics.REQUESTS,
        # Ready when the database answers (the edge checks it) and the consumer runs.
        ready_checks=workers.status if run_workers else None,
        title="督办 notifier",
        description="催办、督办、通报的发送记录、签收与暂停。",
        lifespan=running(workers.start if run_workers else None, workers.stop),
        rules=[Refused],
        audit=audit.writer(session_factory),
        database=session_factory,
    )
    app.state.workers = workers
    app.state.run_workers = run_workers
    app.state.session_factory = session_factory
    app.include_router(router)
    return app
