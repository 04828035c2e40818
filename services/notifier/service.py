"""Notifier use cases. Each takes the caller's session: the caller owns the transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from services.notifier.escalation.policy import EscalationPolicy
from services.notifier.orm import (
    DELIVERED,
    Acknowledgement,
    Digest,
    Notification,
    ProcessedEvent,
    Snooze,
    TaskCondition,
)
from shared.events import ApiKeyPublished, TaskConditionChanged
from shared.kafka import MessagePosition, Outcome
from shared.vocabulary import PrincipalRole

# Who may do what with escalations (roles of the directory's API keys).
# 督查室: snoozes, any acknowledgement
OFFICE_ROLES = frozenset({PrincipalRole.SUPERVISOR, PrincipalRole.ADMIN})
SEES_EVERYTHING = frozenset(
    {PrincipalRole.SUPERVISOR, PrincipalRole.ADMIN, PrincipalRole.OPERATOR, PrincipalRole.LEADER}
)
ACKNOWLEDGES_ANY = frozenset({PrincipalRole.SUPERVISOR, PrincipalRole.ADMIN, PrincipalRole.LEADER})
MAX_SNOOZE = dt.timedelta(days=180)


class Refused(Exception):
    """A request broke a rule; `code` names the rule and `field` the input at fault."""

    def __init__(
        self, code: str, message_zh: str, http_status: int, *, field: str | None = None
    ) -> None:
        super().__init__(f"{code}: {message_zh}")
        self.code = code
        self.message_zh = message_zh
        self.http_status = http_status
        self.field = field

    def to_body(self) -> dict[str, str]:
        """JSON body for the HTTP error response."""
        body = {"code": self.code, "message": self.message_zh}
        if self.field is not None:
            body["field"] = self.field
        return body


@dataclass(frozen=True)
class Folded:
    """What folding one task event did."""

    outcome: Outcome
    changed: bool


def lock_condition(session: Session, task_code: str) -> TaskCondition | None:
    """The task's condition, locked until the transaction ends and read as of the lock.

    Everything that decides on a condition starts here (lock, then decide): folding a task
    event, a 签收, a snooze. Of a 签收 and a change of the task's responsible units at once,
    the later one waits and then sees the other's; a copy already in the session is refreshed.
    """
    return session.get(TaskCondition, task_code, with_for_update=True, populate_existing=True)


def apply_task_event(session: Session, event: Any, *, position: MessagePosition) -> Folded:
    """Fold a task event into the task's condition; planning happens in the next tick."""
    if not isinstance(event, TaskConditionChanged):
        # Other task events (actions for the timeline) are followed by their own
        # condition change when they matter to escalation.
        return Folded(Outcome.APPLIED, changed=False)
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
        return Folded(Outcome.DUPLICATE, changed=False)
    condition = lock_condition(session, event.task_code)
    if condition is not None and condition.occurred_at > event.occurred_at:
        return Folded(Outcome.APPLIED, changed=False)  # an older event arriving late
    if condition is None:
        condition = TaskCondition(task_code=event.task_code)
        session.add(condition)
    condition.light = event.light
    condition.light_since = event.light_since
    condition.occurred_at = event.occurred_at
    condition.event = event.model_dump(mode="json")
    # Bookkeeping in wall time: when this replica folded it, not the service clock.
    condition.updated_at = dt.datetime.now(dt.UTC)
    return Folded(Outcome.APPLIED, changed=True)


def _unit_of(who: ApiKeyPublished) -> str:
    if not who.unit:
        raise Refused("key_without_unit", "单位密钥未绑定单位", 403)
    return who.unit


def list_notifications(
    session: Session,
    *,
    recipient: str | None = None,
    task_code: str | None = None,
    level: int | None = None,
    status: str | None = None,
    channel: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Notification], int]:
    """A page of the notification log, newest first, and how many match in all."""
    query: Select[Any] = select(Notification)
    if recipient is not None:
        query = query.where(Notification.recipient == recipient)
    if task_code is not None:
        query = query.where(Notification.task_codes.contains([task_code]))
    if level is not None:
        query = query.where(Notification.level == level)
    if status is not None:
        query = query.where(Notification.status == status)
    if channel is not None:
        query = query.where(Notification.channel == channel)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(
        query.order_by(Notification.created_at.desc(), Notification.level.desc(), Notification.id)
        .limit(limit)
        .offset(offset)
    ).scalars()
    return list(rows), int(total)


def visible_recipient(who: ApiKeyPublished, requested: str | None) -> str | None:
    """The recipient filter a caller may use: units see only what was sent to them."""
    if who.role in SEES_EVERYTHING:
        return requested
    unit = _unit_of(who)
    if requested is not None and requested != unit:
        raise Refused("other_recipient", "单位密钥只能查看发给本单位的通知", 403, field="recipient")
    return unit


def _condition(session: Session, task_code: str) -> TaskCondition:
    condition = lock_condition(session, task_code)
    if condition is None:
        raise Refused("unknown_task", f"通知器没有任务 {task_code} 的督办记录", 404)
    return condition


def _responsible_units(condition: TaskCondition) -> set[str]:
    event = condition.event
    return {*event.get("lead_units", ()), *event.get("co_units", ())}


def _check_level(policy: EscalationPolicy, level: int | None) -> None:
    if level is not None and not 1 <= level <= len(policy.levels):
        names = "、".join(f"{lv.level} {lv.name}" for lv in policy.levels)
        raise Refused(
            "unknown_level", f"没有第 {level} 级督办；现行级别：{names}", 422, field="level"
        )


def _actor_name(who: ApiKeyPublished, office: str) -> str:
    if who.role == PrincipalRole.UNIT:
        return _unit_of(who)
    if who.role == PrincipalRole.SUPERVISOR:
        return office
    return who.unit or who.role.label_zh


def acknowledge(
    session: Session,
    *,
    task_code: str,
    level: int,
    note: str | None,
    who: ApiKeyPublished,
    policy: EscalationPolicy,
    now: dt.datetime,
) -> Acknowledgement:
    """Record a 签收 of one level of a task; it stops that level's repeats.

    Decided on the locked condition: a 签收 by a unit that a concurrent task event is
    removing from the task waits for that event, and is then refused.
    """
    condition = _condition(session, task_code)
    _check_level(policy, level)
    delivered = (
        select(Notification.id)
        .where(
            Notification.task_codes.contains([task_code]),
            Notification.level == level,
            Notification.status == DELIVERED,
        )
        .limit(1)
    )
    if who.role == PrincipalRole.UNIT:
        unit = _unit_of(who)
        if unit not in _responsible_units(condition):
            raise Refused("not_responsible", f"{unit}不是任务 {task_code} 的责任单位", 403)
        delivered = delivered.where(Notification.recipient == unit)
    elif who.role not in ACKNOWLEDGES_ANY:
        raise Refused("not_allowed", "只有责任单位、督查室或分管领导可以签收", 403)
    if session.execute(delivered).first() is None:
        name = policy.level(level).name
        whom = "本单位" if who.role == PrincipalRole.UNIT else ""
        raise Refused(
            "nothing_to_acknowledge",
            f"任务 {task_code} 没有已送达{whom}的{name}通知可签收",
            409,
            field="level",
        )
    ack = Acknowledgement(
        id=uuid.uuid4(),
        task_code=task_code,
        level=level,
        by_role=who.role,
        by_name=_actor_name(who, policy.supervising_office),
        key_id=who.key_id,
        note=note,
        acknowledged_at=now,
    )
    session.add(ack)
    session.flush()
    return ack


def snooze(
    session: Session,
    *,
    task_code: str,
    level: int | None,
    until: dt.datetime,
    reason: str,
    who: ApiKeyPublished,
    policy: EscalationPolicy,
    now: dt.datetime,
    task_known_elsewhere: bool = False,
) -> Snooze:
    """Record a snooze of a task (or one level); only the supervising office may snooze."""
    if who.role not in OFFICE_ROLES:
        raise Refused("office_only", "只有督查室可以暂停督办", 403)
    if lock_condition(session, task_code) is None and not task_known_elsewhere:
        raise Refused("unknown_task", f"没有任务 {task_code}", 404)
    _check_level(policy, level)
    if until <= now:
        raise Refused("until_not_future", "暂停截止时间必须晚于当前时间", 422, field="until")
    if until > now + MAX_SNOOZE:
        raise Refused(
            "until_too_far", f"暂停最长 {MAX_SNOOZE.days} 天，请到期后重新评估", 422, field="until"
        )
    row = Snooze(
        id=uuid.uuid4(),
        task_code=task_code,
        level=level,
        until=until,
        reason=reason,
        by_role=who.role,
        by_name=_actor_name(who, policy.supervising_office),
        key_id=who.key_id,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class TaskEscalations:
    """Everything escalation did about one task."""

    task_code: str
    light: str | None
    notifications: list[Notification]
    acknowledgements: list[Acknowledgement]
    snoozes: list[Snooze]


def task_escalations(
    session: Session, *, task_code: str, who: ApiKeyPublished, limit: int = 500
) -> TaskEscalations:
    """Notifications, acknowledgements and snoozes of one task, oldest first."""
    condition = session.get(TaskCondition, task_code)
    query = select(Notification).where(Notification.task_codes.contains([task_code]))
    if who.role not in SEES_EVERYTHING:
        unit = _unit_of(who)
        responsible = condition is not None and unit in _responsible_units(condition)
        received = (
            session.execute(
                select(Notification.id)
                .where(
                    Notification.task_codes.contains([task_code]),
                    Notification.recipient == unit,
                )
                .limit(1)
            ).first()
            is not None
        )
        if not responsible and not received:
            raise Refused("not_responsible", f"{unit}不是任务 {task_code} 的责任单位", 403)
        query = query.where(Notification.recipient == unit)
    notifications = list(
        session.execute(
            query.order_by(Notification.created_at, Notification.level, Notification.id).limit(
                limit
            )
        ).scalars()
    )
    acks = list(
        session.execute(
            select(Acknowledgement)
            .where(Acknowledgement.task_code == task_code)
            .order_by(Acknowledgement.acknowledged_at)
        ).scalars()
    )
    snoozes = list(
        session.execute(
            select(Snooze).where(Snooze.task_code == task_code).order_by(Snooze.created_at)
        ).scalars()
    )
    if condition is None and not notifications and not acks and not snoozes:
        raise Refused("unknown_task", f"通知器没有任务 {task_code} 的督办记录", 404)
    return TaskEscalations(
        task_code=task_code,
        light=condition.light if condition is not None else None,
        notifications=notifications,
        acknowledgements=acks,
        snoozes=snoozes,
    )


def get_digest(session: Session, *, digest_id: uuid.UUID, who: ApiKeyPublished) -> Digest:
    """One digest as it was (or will be) sent; units see only their own."""
    digest = session.get(Digest, digest_id)
    if digest is None or (who.role not in SEES_EVERYTHING and digest.recipient != who.unit):
        raise Refused("unknown_digest", f"没有通知 {digest_id}", 404)
    return digest
