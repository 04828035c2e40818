"""The escalation tick: plan what is due now and record it, in one transaction.

Notifications for outside channels are recorded pending for the dispatcher; inbox ones are
delivered here, since storing them is their delivery.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import BindParameter, all_, any_, bindparam, func, select, text, true, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID, insert
from sqlalchemy.orm import Session

from services.notifier.conditions import is_stopped, load_conditions, text_array
from services.notifier.delivery import record_digests
from services.notifier.escalation.engine import (
    Ack,
    PlannedNotification,
    Recipient,
    RecipientGap,
    SentRecord,
    Snooze,
    TaskCondition,
    evaluate,
    group_into_digests,
)
from services.notifier.escalation.policy import ChannelKind, EscalationPolicy, RecipientRole
from services.notifier.escalation.render import render_notification
from services.notifier.orm import (
    CANCELLED,
    DELIVERED,
    PENDING,
    Acknowledgement,
    Notification,
)
from services.notifier.orm import Snooze as SnoozeRow
from shared.locks import AdvisoryLock

log = structlog.get_logger(__name__)

# One tick at a time across every replica (pg_advisory_xact_lock).
ESCALATION_LOCK_KEY = int(AdvisoryLock.ESCALATION_TICK)
# Fixed forever: a log row's id is derived from the engine's notification id and the channel.
ROW_NAMESPACE = uuid.UUID("b0c4f5a2-1d3e-5f60-8a7b-6475626e0005")
CANCELLED_REASON = "已撤销：计划不再需要此通知（任务情况已变化、已签收、已暂停或已被新通知取代）"


def uuid_array(values: Sequence[uuid.UUID]) -> BindParameter[Any]:
    """One array parameter of ids (`= ANY(:ids)`), not one placeholder per id."""
    return bindparam(None, list(values), type_=ARRAY(UUID(as_uuid=True)))


def row_id(notification_id: uuid.UUID, channel: str) -> uuid.UUID:
    """The log row id of one notification on one channel."""
    return uuid.uuid5(ROW_NAMESPACE, f"{notification_id}|{channel}")


@dataclass(frozen=True)
class TickResult:
    """What one tick decided and wrote."""

    window_start: dt.datetime
    planned: int
    inserted_by_level: dict[int, int]
    inbox_digests: int
    cancelled: int
    gaps: tuple[RecipientGap, ...]
    unreadable_tasks: tuple[str, ...] = field(default=())
    seconds: float = 0.0

    @property
    def inserted(self) -> int:
        """Notifications new in this tick."""
        return sum(self.inserted_by_level.values())


def load_history(session: Session, codes: Sequence[str]) -> list[SentRecord]:
    """Every delivered notification about these tasks, as the engine's sent records."""
    if not codes:
        return []
    rows = session.execute(
        select(
            Notification.task_codes,
            Notification.level,
            Notification.recipient_role,
            Notification.recipient,
            Notification.delivered_at,
        ).where(
            Notification.status == DELIVERED,
            Notification.task_codes.overlap(list(codes)),
        )
    )
    wanted = set(codes)
    records: list[SentRecord] = []
    for task_codes, level, role, name, delivered_at in rows:
        if delivered_at is None or role not in RecipientRole._value2member_map_:
            continue
        recipient = Recipient(RecipientRole(role), name)
        records += [
            SentRecord(code, level, recipient, delivered_at)
            for code in task_codes
            if code in wanted
        ]
    return records


def load_acks(session: Session, codes: Sequence[str]) -> list[Ack]:
    """Acknowledgements of these tasks."""
    if not codes:
        return []
    rows = session.execute(
        select(Acknowledgement).where(Acknowledgement.task_code == any_(text_array(codes)))
    ).scalars()
    return [Ack(r.task_code, r.level, r.by_name, r.acknowledged_at) for r in rows]


def load_snoozes(session: Session, codes: Sequence[str], *, now: dt.datetime) -> list[Snooze]:
    """Snoozes of these tasks still in force at `now`."""
    if not codes:
        return []
    rows = session.execute(
        select(SnoozeRow).where(
            SnoozeRow.task_code == any_(text_array(codes)), SnoozeRow.until > now
        )
    ).scalars()
    return [Snooze(r.task_code, r.until, r.reason, r.level) for r in rows]


def _row(
    item: PlannedNotification,
    condition: TaskCondition,
    *,
    now: dt.datetime,
    fingerprint: str,
    system_url: str | None,
) -> dict[str, object]:
    subject, body = render_notification(item, condition, system_url=system_url)
    return {
        "id": row_id(item.notification_id, item.channel.value),
        "notification_id": item.notification_id,
        "task_codes": list(item.task_ids),
        "level": item.level,
        "level_name": item.level_name,
        "action": item.action,
        "sequence": item.sequence,
        "recipient_role": item.recipient.role.value,
        "recipient": item.recipient.name,
        "channel": item.channel.value,
        "window_start": item.window_start,
        "respond_by": item.respond_by,
        "subject": subject,
        "body": body,
        "status": PENDING,
        "attempts": 0,
        "policy_fingerprint": fingerprint,
        "created_at": now,
    }


def _deliver_to_inbox(
    session: Session,
    items: Sequence[PlannedNotification],
    tasks: Mapping[str, TaskCondition],
    *,
    now: dt.datetime,
    system_url: str | None,
) -> int:
    """Deliver new inbox notifications as digests in this transaction; returns the digests."""
    if not items:
        return 0
    ids = [row_id(item.notification_id, item.channel.value) for item in items]
    rows = {
        (row.notification_id, row.channel): row
        for row in session.execute(
            select(Notification).where(Notification.id == any_(uuid_array(ids)))
        ).scalars()
    }
    pairs = [
        (digest, [rows[(n, digest.channel.value)] for n in digest.notification_ids])
        for digest in group_into_digests(items)
    ]
    return record_digests(session, pairs, tasks, now=now, system_url=system_url, delivered=True)


def run_tick(
    session: Session,
    *,
    policy: EscalationPolicy,
    now: dt.datetime,
    system_url: str | None = None,
) -> TickResult:
    """Plan every notification due at `now`; record new ones, cancel stale pending ones.

    The caller owns the transaction (and counts metrics after it commits). An advisory lock
    serialises ticks across replicas; deterministic row ids make a repeated tick insert
    nothing new.
    """
    started = time.perf_counter()
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ESCALATION_LOCK_KEY})
    conditions, unreadable = load_conditions(session, now=now)
    live = [c.task_id for c in conditions if not is_stopped(c)]
    plan = evaluate(
        conditions,
        load_history(session, live),
        load_acks(session, live),
        load_snoozes(session, live, now=now),
        policy,
        now,
    )
    by_task = {c.task_id: c for c in conditions}
    values = [
        _row(
            item,
            by_task[item.task_ids[0]],
            now=now,
            fingerprint=policy.fingerprint,
            system_url=system_url,
        )
        for item in plan.notifications
    ]
    inserted: Counter[int] = Counter()
    new_ids: set[uuid.UUID] = set()
    if values:
        for new_id, level in session.execute(
            insert(Notification)
            .on_conflict_do_nothing()
            .returning(Notification.id, Notification.level),
            values,
        ):
            inserted[level] += 1
            new_ids.add(new_id)
    inbox_digests = _deliver_to_inbox(
        session,
        [
            item
            for item in plan.notifications
            if item.channel is ChannelKind.INBOX
            and row_id(item.notification_id, item.channel.value) in new_ids
        ],
        by_task,
        now=now,
        system_url=system_url,
    )
    # Pending and not yet claimed, but no longer in the plan: the task recovered, was
    # acknowledged or snoozed, or a newer window's notification replaced it.
    planned_ids: list[uuid.UUID] = [value["id"] for value in values]  # type: ignore[misc]
    cancelled = session.execute(
        update(Notification)
        .where(
            Notification.status == PENDING,
            Notification.digest_id.is_(None),
            Notification.id != all_(uuid_array(planned_ids)) if planned_ids else true(),
        )
        .values(status=CANCELLED, last_error=CANCELLED_REASON)
        .returning(Notification.id)
    ).all()
    return TickResult(
        window_start=plan.window_start,
        planned=len(values),
        inserted_by_level=dict(inserted),
        inbox_digests=inbox_digests,
        cancelled=len(cancelled),
        gaps=plan.gaps,
        unreadable_tasks=tuple(unreadable),
        seconds=time.perf_counter() - started,
    )


def count_pending(session: Session) -> int:
    """Notifications not yet delivered, failed or cancelled."""
    return int(
        session.execute(
            select(func.count()).select_from(Notification).where(Notification.status == PENDING)
        ).scalar_one()
    )
