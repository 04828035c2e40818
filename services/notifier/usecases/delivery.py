"""Delivering one digest: claim it with a lease, send it with no transaction open, record the
outcome under the lease.

The claim (a lease) is committed in a short unit of work; the send runs outside any (channel
retries and their waits included); the outcome is recorded in a second short unit of work,
only if the lease is still the claimer's. A digest is marked delivered only there, after a
send that succeeded.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

import structlog

from services.notifier import metrics
from services.notifier.channels.base import Channel, DeliveryResult
from services.notifier.conditions import condition_from_json
from services.notifier.escalation.contacts import ContactBook
from services.notifier.escalation.engine import Digest, Recipient, TaskCondition
from services.notifier.escalation.outbound import DispatchOutcome, dispatch_digest
from services.notifier.escalation.policy import ChannelKind, RecipientRole
from services.notifier.usecases.digests import planned_item
from services.notifier.usecases.ports import (
    DELIVERED,
    FAILED,
    DigestRecord,
    NotificationRecord,
    UnitOfWork,
)

log = structlog.get_logger(__name__)


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


def _rebuild(row: DigestRecord, members: Sequence[NotificationRecord], zone: ZoneInfo) -> Digest:
    items = sorted(
        (planned_item(member, zone) for member in members),
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
    uow: UnitOfWork, *, zone: ZoneInfo, now: dt.datetime, lease_seconds: float, worker: str
) -> Claim | None:
    """Lease the oldest due digest to a new owner; the caller commits, then sends.

    A digest is due when its next round has come (`now`, the service clock) and nobody holds
    a lease on it that is still running (the database's clock, the same for every replica).
    An expired lease means its sender died mid-send: the digest goes again under its id.
    """
    db_now = uow.database_now()
    row = uow.digests.lock_next_due(now, db_now)
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
    row.leased_until = leased_until = db_now + dt.timedelta(seconds=lease_seconds)
    uow.digests.save(row)
    members = uow.notifications.of_digest(row.id)
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
        leased_until=leased_until,
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
    """Send a claimed digest (with the channel's retries and waits); touches no storage."""
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
    uow: UnitOfWork,
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
    row = uow.digests.lock_leased(claim.digest_id, claim.owner)
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
    members = uow.notifications.of_digest(row.id, for_update=True)
    report = _record_round(row, members, claim, result, outcome, clock, rounds, backoff_seconds)
    uow.digests.save(row)
    uow.notifications.save_all(members)
    return report


def _record_round(
    row: DigestRecord,
    members: Sequence[NotificationRecord],
    claim: Claim,
    result: DeliveryResult,
    outcome: DispatchOutcome | None,
    clock: Callable[[], dt.datetime],
    rounds: int,
    backoff_seconds: float,
) -> DeliveryReport:
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
    new_uow: Callable[[], UnitOfWork],
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

    Three steps, and no unit of work spans the send: the claim (a lease) is committed, the
    send runs with no connection checked out, and the outcome is recorded in a unit of work
    of its own. If this process dies between the first and the last, the lease runs out and
    the digest is sent again under the same id (the receiver's Idempotency-Key).
    """
    with new_uow() as uow:
        claim = claim_next_digest(
            uow, zone=zone, now=clock(), lease_seconds=lease_seconds, worker=worker
        )
        uow.commit()
    if claim is None:
        return None
    sent = send_claimed(
        claim, contacts=contacts, channels=channels, clock=clock, system_url=system_url
    )
    with new_uow() as uow:
        report = record_outcome(
            uow, claim, sent, clock=clock, rounds=rounds, backoff_seconds=backoff_seconds
        )
        uow.commit()
    return report
