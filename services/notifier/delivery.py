"""The dispatcher's two steps: compose pending notifications into digests, then deliver one.

Composing commits the digest (its id, recipient and tasks) before anything is sent, so a
resend after a crash carries the same id, which receivers use as the idempotency key.
Delivering claims a digest with a lease in a short transaction that commits, sends it with
no transaction open (channel retries and their waits included), and records the outcome in
a second short transaction, only if the lease is still the claimer's. A digest is marked
delivered only in that transaction, after a send that succeeded.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import func, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from services.notifier import metrics
from services.notifier.channels.base import Channel, DeliveryResult
from services.notifier.conditions import (
    condition_from_json,
    condition_to_json,
    is_stopped,
    load_conditions,
)
from services.notifier.escalation.contacts import ContactBook
from services.notifier.escalation.engine import (
    Digest,
    PlannedNotification,
    Recipient,
    TaskCondition,
    group_into_digests,
)
from services.notifier.escalation.outbound import DispatchOutcome, dispatch_digest
from services.notifier.escalation.policy import ChannelKind, RecipientRole
from services.notifier.escalation.render import render_plain
from services.notifier.orm import (
    CANCELLED,
    DELIVERED,
    FAILED,
    PENDING,
    SENDING,
    Notification,
)
from services.notifier.orm import Digest as DigestRow
from shared.db import UnitOfWork
from shared.locks import AdvisoryLock

log = structlog.get_logger(__name__)

# One composer at a time across replicas, so one recipient's rows are never split between two.
COMPOSE_LOCK_KEY = int(AdvisoryLock.DIGEST_COMPOSE)
STOPPED_REASON = "已撤销：任务已办结、待销号或已延期，不再发送"
UNKNOWN_TASK_REASON = "已撤销：通知器没有该任务的当前情况"


@dataclass(frozen=True)
class DeliveryReport:
    """What happened to one digest in one delivery round."""

    digest_id: uuid.UUID
    channel: str
    recipient: str
    # delivered, retry (a later round is scheduled), failed, or lease_lost (the lease ran
    # out mid-send and another dispatcher took the digest over; nothing was recorded)
    outcome: str
    attempts: int
    error: str | None = None


def _item(row: Notification, zone: ZoneInfo) -> PlannedNotification:
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
    session: Session,
    *,
    zone: ZoneInfo,
    now: dt.datetime,
    batch_size: int,
    system_url: str | None = None,
) -> int:
    """Group unclaimed pending notifications into digests; returns how many were composed."""
    locked = session.execute(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": COMPOSE_LOCK_KEY}
    ).scalar_one()
    if not locked:
        return 0
    rows = list(
        session.execute(
            select(Notification)
            .where(Notification.status == PENDING, Notification.digest_id.is_(None))
            .order_by(
                Notification.recipient_role,
                Notification.recipient,
                Notification.channel,
                Notification.window_start,
                Notification.created_at,
            )
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    if not rows:
        return 0
    codes = sorted({code for row in rows for code in row.task_codes})
    conditions, _unreadable = load_conditions(session, now=now, codes=codes)
    tasks = {c.task_id: c for c in conditions}
    by_notification: dict[tuple[uuid.UUID, str], Notification] = {}
    items: list[PlannedNotification] = []
    for row in rows:
        known = [tasks.get(code) for code in row.task_codes]
        if any(c is None for c in known):
            row.status, row.last_error = CANCELLED, UNKNOWN_TASK_REASON
            continue
        # The tick cancels what the plan dropped; this catches a task closed since then.
        if all(c is not None and is_stopped(c) for c in known):
            row.status, row.last_error = CANCELLED, STOPPED_REASON
            continue
        try:
            item = _item(row, zone)
        except ValueError as exc:
            row.status, row.last_error = FAILED, f"无法投递的通知记录: {exc}"
            continue
        by_notification[(row.notification_id, row.channel)] = row
        items.append(item)
    pairs = [
        (digest, [by_notification[(n, digest.channel.value)] for n in digest.notification_ids])
        for digest in group_into_digests(items)
    ]
    return record_digests(session, pairs, tasks, now=now, system_url=system_url)


def record_digests(
    session: Session,
    pairs: Sequence[tuple[Digest, Sequence[Notification]]],
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
    values: list[dict[str, Any]] = []
    stored: list[tuple[Digest, Sequence[Notification]]] = []
    for digest, members in pairs:
        snapshot = {code: tasks[code] for code in digest.task_ids if code in tasks}
        try:
            subject, body = render_plain(digest, snapshot, system_url=system_url)
        except (KeyError, ValueError) as exc:
            for row in members:
                row.status, row.last_error = FAILED, f"无法生成通知内容: {exc}"
            log.exception("dispatch.render_failed", digest=str(digest.digest_id))
            continue
        values.append(
            {
                "id": digest.digest_id,
                "recipient_role": digest.recipient.role.value,
                "recipient": digest.recipient.name,
                "channel": digest.channel.value,
                "window_start": digest.window_start,
                "level": digest.level,
                "level_name": digest.level_name,
                "task_codes": list(digest.task_ids),
                "subject": subject,
                "body": body,
                "tasks": {code: condition_to_json(c) for code, c in snapshot.items()},
                "status": DELIVERED if delivered else SENDING,
                "attempts": 1 if delivered else 0,
                "rounds": 1 if delivered else 0,
                "created_at": now,
                "delivered_at": now if delivered else None,
            }
        )
        stored.append((digest, members))
    if values:
        # The digests exist before any notification points at them (the foreign key).
        session.execute(insert(DigestRow).on_conflict_do_nothing(), values)
    for digest, members in stored:
        for row in members:
            row.digest_id = digest.digest_id
            if delivered:
                row.status, row.delivered_at, row.attempts = DELIVERED, now, row.attempts + 1
    return len(stored)


def _rebuild(row: DigestRow, members: Sequence[Notification], zone: ZoneInfo) -> Digest:
    items = sorted(
        (_item(member, zone) for member in members),
        key=lambda n: (-n.level, n.task_ids, str(n.notification_id)),
    )
    return Digest(
        digest_id=row.id,
        recipient=Recipient(RecipientRole(row.recipient_role), row.recipient),
        channel=ChannelKind(row.channel),
        window_start=row.window_start.astimezone(zone),
        items=tuple(items),
    )


@dataclass(frozen=True)
class Claim:
    """A digest leased to one sender: what to send, read from committed rows.

    `owner` is this claim's own token; only the holder of the lease records the outcome.
    `digest` is None when the rows cannot be turned back into a message (`unsendable` says
    why), which fails the digest visibly instead of retrying it forever.
    """

    digest_id: uuid.UUID
    owner: str
    leased_until: dt.datetime
    claimed_at: dt.datetime
    channel: str
    recipient: str
    digest: Digest | None
    tasks: Mapping[str, TaskCondition]
    unsendable: str | None = None


def claim_next_digest(
    session: Session, *, zone: ZoneInfo, now: dt.datetime, lease_seconds: float, worker: str
) -> Claim | None:
    """Lease the oldest due digest to a new owner; the caller commits, then sends.

    A digest is due when its next round has come (`now`, the service clock) and nobody holds
    a lease on it that is still running (the database's clock, the same for every replica).
    An expired lease means its sender died mid-send: the digest goes again under its id.
    """
    db_now = session.execute(select(func.now())).scalar_one()
    row = session.execute(
        select(DigestRow)
        .where(
            DigestRow.status == SENDING,
            or_(DigestRow.next_attempt_at.is_(None), DigestRow.next_attempt_at <= now),
            or_(DigestRow.leased_until.is_(None), DigestRow.leased_until <= db_now),
        )
        .order_by(DigestRow.created_at, DigestRow.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).scalar_one_or_none()
    if row is None:
        return None
    if row.lease_owner is not None:
        log.warning(
            "dispatch.lease_expired",
            digest=str(row.id),
            channel=row.channel,
            recipient=row.recipient,
            previous_owner=row.lease_owner,
            leased_until=row.leased_until.isoformat() if row.leased_until else None,
            detail="its sender stopped mid-send; sending it again under the same id",
        )
    owner = f"{worker}/{uuid.uuid4().hex}"
    row.lease_owner = owner
    row.leased_until = db_now + dt.timedelta(seconds=lease_seconds)
    members = list(
        session.execute(
            select(Notification).where(Notification.digest_id == row.id).order_by(Notification.id)
        ).scalars()
    )
    digest: Digest | None = None
    tasks: dict[str, TaskCondition] = {}
    unsendable: str | None = None
    try:
        digest = _rebuild(row, members, zone)
        tasks = {code: condition_from_json(data) for code, data in row.tasks.items()}
    except Exception as exc:
        # A bug or a corrupt row: fail this digest visibly rather than retry it forever.
        log.exception("dispatch.digest_unsendable", digest=str(row.id))
        digest, unsendable = None, f"无法发送: {exc!r}"
    return Claim(
        digest_id=row.id,
        owner=owner,
        leased_until=row.leased_until,
        claimed_at=now,
        channel=row.channel,
        recipient=row.recipient,
        digest=digest,
        tasks=tasks,
        unsendable=unsendable,
    )


def send_claimed(
    claim: Claim,
    *,
    contacts: ContactBook,
    channels: Mapping[ChannelKind, Channel],
    clock: Callable[[], dt.datetime],
    system_url: str | None,
) -> DispatchOutcome | DeliveryResult:
    """Send a claimed digest (with the channel's retries and waits); touches no database."""
    if claim.digest is None:
        return DeliveryResult(ok=False, attempts=0, error=claim.unsendable or "无法发送")
    try:
        return dispatch_digest(
            claim.digest,
            tasks=claim.tasks,
            contacts=contacts,
            channels=channels,
            clock=clock,
            system_url=system_url,
        )
    except Exception as exc:
        log.exception("dispatch.digest_unsendable", digest=str(claim.digest_id))
        return DeliveryResult(ok=False, attempts=0, error=f"无法发送: {exc!r}")


Step = Literal["delivered", "retry", "failed"]


def next_step(result: DeliveryResult, *, rounds_done: int, rounds: int) -> Step:
    """After a round: delivered on success, another round for a transient failure while
    rounds remain, failed otherwise."""
    if result.ok:
        return "delivered"
    if result.retryable and rounds_done < rounds:
        return "retry"
    return "failed"


def next_round_at(started: dt.datetime, *, rounds_done: int, backoff_seconds: float) -> dt.datetime:
    """When the round after the `rounds_done`-th starts: backoff × 2**(rounds_done - 1) later."""
    return started + dt.timedelta(seconds=backoff_seconds * 2 ** (rounds_done - 1))


def record_outcome(
    session: Session,
    claim: Claim,
    sent: DispatchOutcome | DeliveryResult,
    *,
    clock: Callable[[], dt.datetime],
    rounds: int,
    backoff_seconds: float,
) -> DeliveryReport:
    """Record one round of a claimed digest, if the claim still holds its lease; caller commits.

    The digest and its notifications become delivered (only after a successful send),
    scheduled for another round (a transient failure), or failed; the lease is released. A
    claim whose lease was taken over (it ran out and another dispatcher claimed the digest)
    records nothing: the new holder's send and record are the ones that count.
    """
    outcome = sent if isinstance(sent, DispatchOutcome) else None
    result = sent.result if isinstance(sent, DispatchOutcome) else sent
    row = session.execute(
        select(DigestRow)
        .where(DigestRow.id == claim.digest_id, DigestRow.lease_owner == claim.owner)
        .with_for_update()
    ).scalar_one_or_none()
    if row is None:
        log.warning(
            "dispatch.lease_lost",
            digest=str(claim.digest_id),
            channel=claim.channel,
            recipient=claim.recipient,
            owner=claim.owner,
            ok=result.ok,
            detail="the lease ran out during the send and another dispatcher took the digest",
        )
        return DeliveryReport(
            claim.digest_id,
            claim.channel,
            claim.recipient,
            "lease_lost",
            result.attempts,
            result.error,
        )
    members = list(
        session.execute(
            select(Notification)
            .where(Notification.digest_id == row.id)
            .order_by(Notification.id)
            .with_for_update()
        ).scalars()
    )
    retries = result.attempts if row.attempts else max(result.attempts - 1, 0)
    if retries:
        metrics.DELIVERY_RETRIES.labels(row.channel).inc(retries)
    row.attempts += result.attempts
    row.rounds += 1
    row.status_code = result.status_code
    row.lease_owner, row.leased_until = None, None
    for member in members:
        member.attempts += result.attempts
    step = next_step(result, rounds_done=row.rounds, rounds=rounds)
    if step == "delivered":
        delivered_at = outcome.records[0].sent_at if outcome and outcome.records else clock()
        row.status, row.delivered_at, row.next_attempt_at = DELIVERED, delivered_at, None
        for member in members:
            member.status, member.delivered_at = DELIVERED, delivered_at
        metrics.DELIVERIES.labels(row.channel, "delivered").inc()
        return DeliveryReport(row.id, row.channel, row.recipient, "delivered", result.attempts)
    error = result.error or "投递失败"
    row.last_error = error
    for member in members:
        member.last_error = error
    if step == "retry":
        row.next_attempt_at = next_round_at(
            claim.claimed_at, rounds_done=row.rounds, backoff_seconds=backoff_seconds
        )
        log.warning(
            "dispatch.round_failed",
            digest=str(row.id),
            channel=row.channel,
            recipient=row.recipient,
            round=row.rounds,
            next_attempt_at=row.next_attempt_at.isoformat(),
            error=error,
        )
        return DeliveryReport(row.id, row.channel, row.recipient, "retry", result.attempts, error)
    row.status, row.failed_at, row.next_attempt_at = FAILED, clock(), None
    for member in members:
        member.status = FAILED
    metrics.DELIVERIES.labels(row.channel, "failed").inc()
    if outcome is not None and outcome.missing_contact is not None:
        metrics.MISSING_CONTACTS.labels(row.channel, row.recipient_role).inc()
    log.error(
        "dispatch.delivery_failed",
        digest=str(row.id),
        channel=row.channel,
        recipient=row.recipient,
        role=row.recipient_role,
        tasks=row.task_codes,
        attempts=row.attempts,
        error=error,
    )
    return DeliveryReport(row.id, row.channel, row.recipient, "failed", result.attempts, error)


def deliver_next_digest(
    session_factory: sessionmaker[Session],
    *,
    worker: str,
    lease_seconds: float,
    zone: ZoneInfo,
    contacts: ContactBook,
    channels: Mapping[ChannelKind, Channel],
    clock: Callable[[], dt.datetime],
    rounds: int,
    backoff_seconds: float,
    system_url: str | None = None,
) -> DeliveryReport | None:
    """Claim the oldest due digest, send it, record what happened; None when nothing is due.

    Three steps, and no transaction spans the send: the claim (a lease) is committed, the
    send runs with no connection checked out, and the outcome is recorded in a transaction
    of its own. If this process dies between the first and the last, the lease runs out and
    the digest is sent again under the same id (the receiver's Idempotency-Key).
    """
    with UnitOfWork(session_factory) as uow:
        claim = claim_next_digest(
            uow.session, zone=zone, now=clock(), lease_seconds=lease_seconds, worker=worker
        )
        uow.commit()
    if claim is None:
        return None
    sent = send_claimed(
        claim, contacts=contacts, channels=channels, clock=clock, system_url=system_url
    )
    with UnitOfWork(session_factory) as uow:
        report = record_outcome(
            uow.session, claim, sent, clock=clock, rounds=rounds, backoff_seconds=backoff_seconds
        )
        uow.commit()
    return report
