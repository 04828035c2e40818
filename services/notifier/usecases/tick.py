"""The escalation tick: plan what is due now and record it, in one unit of work.

Notifications for outside channels are recorded pending for the dispatcher; inbox ones are
delivered here, since storing them is their delivery. One held by quiet hours is recorded
pending with its `not_before`, on any channel, and goes when the dispatcher's time comes.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from services.notifier.conditions import is_stopped
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
from services.notifier.usecases.digests import record_digests
from services.notifier.usecases.folding import current_conditions
from services.notifier.usecases.ports import PENDING, NotificationRecord, UnitOfWork
from shared.workcal import WorkCalendar

# Fixed forever: a log row's id is derived from the engine's notification id and the channel.
ROW_NAMESPACE = uuid.UUID("b0c4f5a2-1d3e-5f60-8a7b-6475626e0005")
CANCELLED_REASON = "已撤销：计划不再需要此通知（任务情况已变化、已签收、已暂停或已被新通知取代）"


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


def load_history(uow: UnitOfWork, codes: Sequence[str]) -> list[SentRecord]:
    """Every delivered notification about these tasks, as the engine's sent records."""
    if not codes:
        return []
    wanted = set(codes)
    records: list[SentRecord] = []
    for row in uow.notifications.delivered_about(codes):
        if row.delivered_at is None or row.recipient_role not in RecipientRole._value2member_map_:
            continue
        recipient = Recipient(RecipientRole(row.recipient_role), row.recipient)
        records += [
            SentRecord(code, row.level, recipient, row.delivered_at)
            for code in row.task_codes
            if code in wanted
        ]
    return records


def load_acks(uow: UnitOfWork, codes: Sequence[str]) -> list[Ack]:
    """Acknowledgements of these tasks."""
    if not codes:
        return []
    return [
        Ack(r.task_code, r.level, r.by_name, r.acknowledged_at)
        for r in uow.acknowledgements.of_tasks(codes)
    ]


def load_snoozes(uow: UnitOfWork, codes: Sequence[str], *, now: dt.datetime) -> list[Snooze]:
    """Snoozes of these tasks still in force at `now`."""
    if not codes:
        return []
    return [
        Snooze(r.task_code, r.until, r.reason, r.level) for r in uow.snoozes.in_force(codes, now)
    ]


def _record(
    item: PlannedNotification,
    condition: TaskCondition,
    *,
    now: dt.datetime,
    fingerprint: str,
    system_url: str | None,
) -> NotificationRecord:
    subject, body = render_notification(item, condition, system_url=system_url)
    return NotificationRecord(
        id=row_id(item.notification_id, item.channel.value),
        notification_id=item.notification_id,
        task_codes=list(item.task_ids),
        level=item.level,
        level_name=item.level_name,
        action=item.action,
        sequence=item.sequence,
        recipient_role=item.recipient.role.value,
        recipient=item.recipient.name,
        channel=item.channel.value,
        window_start=item.window_start,
        respond_by=item.respond_by,
        subject=subject,
        body=body,
        status=PENDING,
        attempts=0,
        last_error=None,
        digest_id=None,
        policy_fingerprint=fingerprint,
        created_at=now,
        delivered_at=None,
        not_before=item.not_before,
    )


def _deliver_to_inbox(
    uow: UnitOfWork,
    items: Sequence[PlannedNotification],
    tasks: Mapping[str, TaskCondition],
    *,
    now: dt.datetime,
    system_url: str | None,
) -> int:
    """Deliver new inbox notifications as digests in this unit of work; returns the digests."""
    if not items:
        return 0
    ids = [row_id(item.notification_id, item.channel.value) for item in items]
    rows = {(row.notification_id, row.channel): row for row in uow.notifications.by_ids(ids)}
    pairs = [
        (digest, [rows[(n, digest.channel.value)] for n in digest.notification_ids])
        for digest in group_into_digests(items)
    ]
    return record_digests(uow, pairs, tasks, now=now, system_url=system_url, delivered=True)


def run_tick(
    uow: UnitOfWork,
    *,
    policy: EscalationPolicy,
    now: dt.datetime,
    system_url: str | None = None,
    calendar: WorkCalendar | None = None,
) -> TickResult:
    """Plan every notification due at `now`; record new ones, cancel stale pending ones.

    The caller commits (and counts metrics after it has). A lock serialises ticks across
    replicas; deterministic row ids make a repeated tick insert nothing new.
    """
    started = time.perf_counter()
    uow.locks.planning()
    conditions, unreadable = current_conditions(uow.conditions, now=now)
    live = [c.task_id for c in conditions if not is_stopped(c)]
    plan = evaluate(
        conditions,
        load_history(uow, live),
        load_acks(uow, live),
        load_snoozes(uow, live, now=now),
        policy,
        now,
        calendar,
    )
    by_task = {c.task_id: c for c in conditions}
    records = [
        _record(
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
    if records:
        for new_id, level in uow.notifications.add_new(records):
            inserted[level] += 1
            new_ids.add(new_id)
    inbox_digests = _deliver_to_inbox(
        uow,
        [
            item
            for item in plan.notifications
            if item.channel is ChannelKind.INBOX
            and item.not_before is None  # a held one goes when the dispatcher's time comes
            and row_id(item.notification_id, item.channel.value) in new_ids
        ],
        by_task,
        now=now,
        system_url=system_url,
    )
    # Pending and not yet claimed, but no longer in the plan: the task recovered, was
    # acknowledged or snoozed, or a newer window's notification replaced it.
    cancelled = uow.notifications.cancel_unplanned([r.id for r in records], CANCELLED_REASON)
    return TickResult(
        window_start=plan.window_start,
        planned=len(records),
        inserted_by_level=dict(inserted),
        inbox_digests=inbox_digests,
        cancelled=cancelled,
        gaps=plan.gaps,
        unreadable_tasks=tuple(unreadable),
        seconds=time.perf_counter() - started,
    )


def count_pending(uow: UnitOfWork) -> int:
    """Notifications not yet delivered, failed or cancelled."""
    return uow.notifications.count_pending()
