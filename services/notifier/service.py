"""Notifier use cases. Each takes the caller's session: the caller owns the transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.notifier import metrics
from services.notifier.orm import Notification, ProcessedEvent, TaskCondition
from shared.clock import SHANGHAI
from shared.events import TaskConditionChanged
from shared.kafka import Outcome

NOTIFICATION_NAMESPACE = uuid.UUID("6f1c1d1e-5b0b-4c61-9d53-6475626e0002")


@dataclass(frozen=True)
class MessagePosition:
    """Where a consumed message came from."""

    topic: str
    partition: int
    offset: int


def apply_task_event(
    session: Session,
    event: TaskConditionChanged,
    *,
    position: MessagePosition,
    now: dt.datetime,
    supervising_office: str,
) -> Outcome:
    """Fold a light change into the task's condition and plan what it calls for."""
    inserted = session.execute(
        insert(ProcessedEvent)
        .values(
            event_id=event.event_id,
            topic=position.topic,
            partition=position.partition,
            offset=position.offset,
        )
        .on_conflict_do_nothing(index_elements=[ProcessedEvent.event_id])
        .returning(ProcessedEvent.event_id)
    ).first()
    if inserted is None:
        return Outcome.DUPLICATE
    condition = session.get(TaskCondition, event.task_code, with_for_update=True)
    if condition is not None and condition.light_since > event.occurred_at:
        return Outcome.APPLIED  # an older event arriving late changes nothing
    if condition is None:
        condition = TaskCondition(task_code=event.task_code)
        session.add(condition)
    condition.light = event.light
    condition.light_since = event.occurred_at
    condition.event = event.model_dump(mode="json")
    if event.light == "red":
        plan_notice(session, event, now=now, supervising_office=supervising_office)
    return Outcome.APPLIED


def plan_notice(
    session: Session, event: TaskConditionChanged, *, now: dt.datetime, supervising_office: str
) -> None:
    """Level 2 督办 notice to the lead units and the supervising office (red on day 0)."""
    day = event.occurred_at.astimezone(SHANGHAI).date().isoformat()
    subject = f"【督办】{event.task_code} 已逾期，请立即报送进展"
    body = (
        f"重点工作：{event.title}\n"
        f"牵头单位：{'、'.join(event.lead_units) or '（未明确）'}\n"
        f"完成时限：{event.due.isoformat() if event.due else '（无）'}\n"
        f"情况：{'；'.join(event.reasons)}\n"
        "请于3个工作日内报送进展情况及整改措施。"
    )
    recipients = [("lead_unit", unit) for unit in event.lead_units]
    recipients.append(("supervising_office", supervising_office))
    for role, recipient in recipients:
        notification_id = uuid.uuid5(
            NOTIFICATION_NAMESPACE, f"{event.task_code}\x002\x00{recipient}\x00inbox\x00{day}"
        )
        session.execute(
            insert(Notification)
            .values(
                id=notification_id,
                task_codes=[event.task_code],
                level=2,
                level_name="督办",
                recipient_role=role,
                recipient=recipient,
                channel="inbox",
                subject=subject,
                body=body,
                status="delivered",
                attempts=1,
                created_at=now,
                delivered_at=now,
            )
            .on_conflict_do_nothing(index_elements=[Notification.id])
        )
        metrics.NOTIFICATIONS_PLANNED.labels("2").inc()
        metrics.DELIVERIES.labels("inbox", "delivered").inc()


def list_notifications(
    session: Session, *, recipient: str | None, task_code: str | None, limit: int, offset: int
) -> list[Notification]:
    """Notifications, newest first."""
    query = select(Notification)
    if recipient is not None:
        query = query.where(Notification.recipient == recipient)
    if task_code is not None:
        query = query.where(Notification.task_codes.contains([task_code]))
    return list(
        session.execute(
            query.order_by(Notification.created_at.desc(), Notification.id)
            .limit(limit)
            .offset(offset)
        ).scalars()
    )
