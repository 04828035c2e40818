"""Composing digests: pending notifications grouped per recipient, channel and window.

A notification held by quiet hours is composed only once its `not_before` has come.

Composing commits the digest (its id, recipient and tasks) before anything is sent, so a
resend after a crash carries the same id, which receivers use as the idempotency key.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

import structlog

from services.notifier.conditions import condition_to_json, is_stopped
from services.notifier.escalation.engine import (
    Digest,
    PlannedNotification,
    Recipient,
    TaskCondition,
    group_into_digests,
)
from services.notifier.escalation.policy import ChannelKind, RecipientRole
from services.notifier.escalation.render import render_plain
from services.notifier.usecases.folding import current_conditions
from services.notifier.usecases.ports import (
    CANCELLED,
    DELIVERED,
    FAILED,
    SENDING,
    DigestRecord,
    NotificationRecord,
    UnitOfWork,
)

log = structlog.get_logger(__name__)

STOPPED_REASON = "已撤销：任务已办结、待销号或已延期，不再发送"
UNKNOWN_TASK_REASON = "已撤销：通知器没有该任务的当前情况"


def planned_item(row: NotificationRecord, zone: ZoneInfo) -> PlannedNotification:
    """The engine's notification a log record was planned as."""
    return PlannedNotification(
        notification_id=row.notification_id,
        recipient=Recipient(RecipientRole(row.recipient_role), row.recipient),
        level=row.level,
        channel=ChannelKind(row.channel),
        task_ids=tuple(row.task_codes),
        window_start=row.window_start.astimezone(zone),
        level_name=row.level_name,
        action=row.action,
        sequence=row.sequence,
        respond_by=row.respond_by,
    )


def compose_digests(
    uow: UnitOfWork,
    *,
    zone: ZoneInfo,
    now: dt.datetime,
    batch_size: int,
    system_url: str | None = None,
) -> int:
    """Group unclaimed pending notifications into digests; returns how many were composed.

    One composer at a time across replicas (a lock tried, not waited for), so one
    recipient's notifications are never split between two digests.
    """
    if not uow.locks.try_composing():
        return 0
    rows = uow.notifications.unclaimed(batch_size, now=now)
    if not rows:
        return 0
    codes = sorted({code for row in rows for code in row.task_codes})
    conditions, _unreadable = current_conditions(uow.conditions, now=now, codes=codes)
    tasks = {c.task_id: c for c in conditions}
    by_notification: dict[tuple[uuid.UUID, str], NotificationRecord] = {}
    items: list[PlannedNotification] = []
    dropped: list[NotificationRecord] = []
    for row in rows:
        known = [tasks.get(code) for code in row.task_codes]
        if any(c is None for c in known):
            row.status, row.last_error = CANCELLED, UNKNOWN_TASK_REASON
            dropped.append(row)
            continue
        # The tick cancels what the plan dropped; this catches a task closed since then.
        if all(c is not None and is_stopped(c) for c in known):
            row.status, row.last_error = CANCELLED, STOPPED_REASON
            dropped.append(row)
            continue
        try:
            item = planned_item(row, zone)
        except ValueError as exc:
            row.status, row.last_error = FAILED, f"无法投递的通知记录: {exc}"
            dropped.append(row)
            continue
        by_notification[(row.notification_id, row.channel)] = row
        items.append(item)
    uow.notifications.save_all(dropped)
    pairs = [
        (digest, [by_notification[(n, digest.channel.value)] for n in digest.notification_ids])
        for digest in group_into_digests(items)
    ]
    return record_digests(uow, pairs, tasks, now=now, system_url=system_url)


def record_digests(
    uow: UnitOfWork,
    pairs: Sequence[tuple[Digest, Sequence[NotificationRecord]]],
    tasks: Mapping[str, TaskCondition],
    *,
    now: dt.datetime,
    system_url: str | None,
    delivered: bool = False,
) -> int:
    """Store digests and point their notifications at them; returns how many were stored.

    `delivered` is for the inbox, where storing the message is the delivery: the digests
    and their notifications are recorded delivered in the transaction that stores them. A
    digest that cannot be rendered fails its notifications instead.
    """
    digests: list[DigestRecord] = []
    stored: list[tuple[Digest, Sequence[NotificationRecord]]] = []
    unrendered: list[NotificationRecord] = []
    for digest, members in pairs:
        snapshot = {code: tasks[code] for code in digest.task_ids if code in tasks}
        try:
            subject, body = render_plain(digest, snapshot, system_url=system_url)
        except (KeyError, ValueError) as exc:
            for row in members:
                row.status, row.last_error = FAILED, f"无法生成通知内容: {exc}"
            unrendered += members
            log.exception("dispatch.render_failed", digest=str(digest.digest_id))
            continue
        digests.append(
            DigestRecord(
                id=digest.digest_id,
                recipient_role=digest.recipient.role.value,
                recipient=digest.recipient.name,
                channel=digest.channel.value,
                window_start=digest.window_start,
                level=digest.level,
                level_name=digest.level_name,
                task_codes=list(digest.task_ids),
                subject=subject,
                body=body,
                tasks={code: condition_to_json(c) for code, c in snapshot.items()},
                status=DELIVERED if delivered else SENDING,
                attempts=1 if delivered else 0,
                rounds=1 if delivered else 0,
                status_code=None,
                last_error=None,
                next_attempt_at=None,
                created_at=now,
                delivered_at=now if delivered else None,
                failed_at=None,
                lease_owner=None,
                leased_until=None,
            )
        )
        stored.append((digest, members))
    uow.notifications.save_all(unrendered)
    # The digests exist before any notification points at them (the foreign key).
    if digests:
        uow.digests.add_new(digests)
    attached: list[NotificationRecord] = []
    for digest, members in stored:
        for row in members:
            row.digest_id = digest.digest_id
            if delivered:
                row.status, row.delivered_at, row.attempts = DELIVERED, now, row.attempts + 1
        attached += members
    uow.notifications.save_all(attached)
    return len(stored)
