"""What people do and see: the notification log, digests, 签收, snoozes, a task's timeline.

Who may see and do what is decided in `services/notifier/access.py`, never here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from services.notifier import access
from services.notifier.escalation.policy import EscalationPolicy
from services.notifier.refusals import Refused
from services.notifier.usecases.ports import (
    AcknowledgementRecord,
    DigestRecord,
    NotificationFilter,
    NotificationRecord,
    SnoozeRecord,
    StoredCondition,
    UnitOfWork,
)
from shared.events import ApiKeyPublished

MAX_SNOOZE = dt.timedelta(days=180)
ROLE_NAMES_ZH = {"admin": "系统管理员", "leader": "分管领导", "operator": "运维"}


def list_notifications(
    uow: UnitOfWork,
    *,
    who: ApiKeyPublished,
    recipient: str | None = None,
    task_code: str | None = None,
    level: int | None = None,
    status: str | None = None,
    channel: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[NotificationRecord], int]:
    """A page of the notification log `who` may see, newest first, and how many match in all."""
    scope = access.listing_scope(who, recipient)
    wanted = NotificationFilter(
        recipient=recipient, task_code=task_code, level=level, status=status, channel=channel
    )
    return uow.notifications.page(scope, wanted, limit=limit, offset=offset)


def get_digest(uow: UnitOfWork, *, digest_id: uuid.UUID, who: ApiKeyPublished) -> DigestRecord:
    """One digest as it was (or will be) sent; units see only their own."""
    digest = uow.digests.get(digest_id)
    if digest is None or not access.scope(who).sees(digest.recipient):
        raise Refused("unknown_digest", f"没有通知 {digest_id}", 404)
    return digest


def responsible_units(condition: StoredCondition | None) -> set[str]:
    """The units answering for a task (lead and co-organising), from its latest event."""
    if condition is None:
        return set()
    event = condition.event
    return {*event.get("lead_units", ()), *event.get("co_units", ())}


def _check_level(policy: EscalationPolicy, level: int | None) -> None:
    if level is not None and not 1 <= level <= len(policy.levels):
        names = "、".join(f"{lv.level} {lv.name}" for lv in policy.levels)
        raise Refused(
            "unknown_level", f"没有第 {level} 级督办；现行级别：{names}", 422, field="level"
        )


def _actor_name(who: ApiKeyPublished, office: str) -> str:
    if who.role == "unit":
        return access.unit_of(who)
    if who.role == "supervisor":
        return office
    return who.unit or ROLE_NAMES_ZH.get(who.role, who.role)


def acknowledge(
    uow: UnitOfWork,
    *,
    task_code: str,
    level: int,
    note: str | None,
    who: ApiKeyPublished,
    policy: EscalationPolicy,
    now: dt.datetime,
) -> AcknowledgementRecord:
    """Record a 签收 of one level of a task; it stops that level's repeats. The caller commits.

    Decided on the locked condition (lock, then decide): a 签收 by a unit that a concurrent
    task event is removing from the task waits for that event, and is then refused.
    """
    condition = uow.conditions.get(task_code, for_update=True)
    if condition is None:
        raise Refused("unknown_task", f"通知器没有任务 {task_code} 的督办记录", 404)
    _check_level(policy, level)
    scope = access.acknowledgement_scope(
        who, task_code=task_code, responsible=responsible_units(condition)
    )
    if not uow.notifications.any_delivered(task_code, level, scope):
        name = policy.level(level).name
        whom = "本单位" if who.role == "unit" else ""
        raise Refused(
            "nothing_to_acknowledge",
            f"任务 {task_code} 没有已送达{whom}的{name}通知可签收",
            409,
            field="level",
        )
    ack = AcknowledgementRecord(
        id=uuid.uuid4(),
        task_code=task_code,
        level=level,
        by_role=who.role,
        by_name=_actor_name(who, policy.supervising_office),
        key_id=who.key_id,
        note=note,
        acknowledged_at=now,
    )
    uow.acknowledgements.add(ack)
    return ack


def snooze(
    uow: UnitOfWork,
    *,
    task_code: str,
    level: int | None,
    until: dt.datetime,
    reason: str,
    who: ApiKeyPublished,
    policy: EscalationPolicy,
    now: dt.datetime,
    task_known_elsewhere: bool = False,
) -> SnoozeRecord:
    """Record a snooze of a task (or one level); only the supervising office may snooze.

    The caller commits."""
    access.require_office(who)
    if uow.conditions.get(task_code, for_update=True) is None and not task_known_elsewhere:
        raise Refused("unknown_task", f"没有任务 {task_code}", 404)
    _check_level(policy, level)
    if until <= now:
        raise Refused("until_not_future", "暂停截止时间必须晚于当前时间", 422, field="until")
    if until > now + MAX_SNOOZE:
        raise Refused(
            "until_too_far", f"暂停最长 {MAX_SNOOZE.days} 天，请到期后重新评估", 422, field="until"
        )
    row = SnoozeRecord(
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
    uow.snoozes.add(row)
    return row


def cancel_snooze(
    uow: UnitOfWork,
    *,
    task_code: str,
    snooze_id: uuid.UUID,
    who: ApiKeyPublished,
    policy: EscalationPolicy,
    now: dt.datetime,
) -> SnoozeRecord:
    """Cancel a snooze before it ends; only the office may. The caller commits.

    Decided on the locked snooze row (lock, then decide): of two cancellations at once, the
    second waits for the first and is then refused as already cancelled. From the commit on,
    the snooze silences nothing, so the next tick plans what it was holding back.
    """
    access.require_office(who, what_zh="取消暂停督办")
    row = uow.snoozes.get(snooze_id, for_update=True)
    if row is None or row.task_code != task_code:
        raise Refused("unknown_snooze", f"任务 {task_code} 没有暂停记录 {snooze_id}", 404)
    if row.cancelled_at is not None:
        when = row.cancelled_at.astimezone(policy.zone).strftime("%Y-%m-%d %H:%M")
        raise Refused(
            "snooze_already_cancelled", f"该暂停已于 {when} 由{row.cancelled_by}取消", 409
        )
    if row.until <= now:
        raise Refused("snooze_already_ended", "该暂停已到期，无需取消", 409)
    row.cancelled_at = now
    row.cancelled_by = _actor_name(who, policy.supervising_office)
    row.cancelled_key_id = who.key_id
    uow.snoozes.save(row)
    return row


@dataclass(frozen=True)
class TaskEscalations:
    """Everything escalation did about one task."""

    task_code: str
    light: str | None
    notifications: list[NotificationRecord]
    acknowledgements: list[AcknowledgementRecord]
    snoozes: list[SnoozeRecord]


def task_escalations(
    uow: UnitOfWork, *, task_code: str, who: ApiKeyPublished, limit: int = 500
) -> TaskEscalations:
    """Notifications, acknowledgements and snoozes of one task, oldest first."""
    condition = uow.conditions.get(task_code)
    scope = access.task_scope(
        who,
        task_code=task_code,
        responsible=responsible_units(condition),
        received=lambda mine: uow.notifications.any_about(task_code, mine),
    )
    notifications = uow.notifications.about_task(task_code, scope, limit)
    acks = uow.acknowledgements.of_task(task_code)
    snoozes = uow.snoozes.of_task(task_code)
    if condition is None and not notifications and not acks and not snoozes:
        raise Refused("unknown_task", f"通知器没有任务 {task_code} 的督办记录", 404)
    return TaskEscalations(
        task_code=task_code,
        light=condition.light if condition is not None else None,
        notifications=notifications,
        acknowledgements=acks,
        snoozes=snoozes,
    )
