"""What an operator may see: the tracker's own machinery, no task data."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from services.tracker.access import READ_OPERATIONS
from services.tracker.auth import Principal
from services.tracker.deps import SessionDep, require
from services.tracker.orm import OutboxMessage
from shared.httpguard import error_responses

router = APIRouter(prefix="/v1/ops", tags=["ops"])


class OpsStatus(BaseModel):
    """The background workers and the outbox."""

    consumer: Literal["ok", "starting", "connecting", "halted", "stopped", "not running"]
    halted_reason: str | None = Field(description="Why the consumer halted or stopped")
    outbox_backlog: int


@router.get("/status", response_model=OpsStatus, responses=error_responses(401, 403, 429, 503))
def ops_status(
    request: Request,
    db: SessionDep,
    _who: Annotated[Principal, Depends(require(READ_OPERATIONS))],
) -> OpsStatus:
    """Consumer state and the number of events waiting in the outbox."""
    loop = request.app.state.workers.consumer
    running = request.app.state.run_workers
    backlog = db.execute(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.published_at.is_(None))
    ).scalar_one()
    return OpsStatus(
        consumer=loop.state if running else "not running",
        halted_reason=loop.reason if running else None,
        outbox_backlog=int(backlog),
    )
