"""From a digest to a delivered message, recording it only after delivery succeeded."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.notifier.channels.base import Channel, DeliveryResult, OutboundMessage
from services.notifier.escalation.contacts import ContactBook, MissingContact, ResolvedContact
from services.notifier.escalation.engine import Digest, SentRecord, TaskCondition, sent_records
from services.notifier.escalation.policy import ChannelKind
from services.notifier.escalation.render import RenderedMessage, render_message

PAYLOAD_SCHEMA_VERSION = 1


def webhook_payload(
    digest: Digest, rendered: RenderedMessage, tasks: Mapping[str, TaskCondition]
) -> dict[str, Any]:
    """The JSON body receivers of the generic webhook get (schema_version 1)."""
    return {
        "schema_version": PAYLOAD_SCHEMA_VERSION,
        "type": "escalation.digest",
        "notification_id": str(digest.digest_id),
        "notification_ids": [str(n) for n in digest.notification_ids],
        "recipient": {"role": digest.recipient.role.value, "name": digest.recipient.name},
        "level": digest.level,
        "level_name": digest.level_name,
        "window_start": digest.window_start.isoformat(),
        "respond_by": digest.respond_by.isoformat() if digest.respond_by else None,
        "subject": rendered.subject_zh,
        "text": rendered.text,
        "tasks": [
            {
                "task_id": item_task,
                "title": tasks[item_task].task_title,
                "level": item.level,
                "level_name": item.level_name,
                "sequence": item.sequence,
                "light": tasks[item_task].light,
                "days_overdue": tasks[item_task].days_overdue,
                "reasons": list(tasks[item_task].reasons_zh),
                "lead_units": list(tasks[item_task].lead_units),
                "co_units": list(tasks[item_task].co_units),
                "leaders": list(tasks[item_task].leaders),
            }
            for item in digest.items
            for item_task in item.task_ids
        ],
    }


def build_outbound(
    digest: Digest,
    rendered: RenderedMessage,
    contact: ResolvedContact,
    tasks: Mapping[str, TaskCondition],
) -> OutboundMessage:
    """The message for the digest's channel; its id (the idempotency key) is the digest id."""
    return OutboundMessage(
        notification_id=str(digest.digest_id),
        recipient=digest.recipient.name,
        subject=rendered.subject_zh,
        text=rendered.text,
        markdown=rendered.markdown,
        html=rendered.html,
        payload=webhook_payload(digest, rendered, tasks),
        address=contact.address,
        secret=contact.secret,
    )


@dataclass(frozen=True)
class DispatchOutcome:
    """What happened to one digest; `records` is empty unless it was delivered."""

    digest: Digest
    result: DeliveryResult
    records: tuple[SentRecord, ...]
    missing_contact: MissingContact | None = None


def dispatch_digest(
    digest: Digest,
    *,
    tasks: Mapping[str, TaskCondition],
    contacts: ContactBook,
    channels: Mapping[ChannelKind, Channel],
    clock: Callable[[], datetime],
    system_url: str | None = None,
) -> DispatchOutcome:
    """Render, resolve the contact, deliver; history rows only for a delivery that happened."""
    try:
        contact = contacts.resolve_address(digest.recipient, digest.channel)
    except MissingContact as exc:
        # A failed outcome the caller logs and alerts on, never a silent skip.
        return DispatchOutcome(
            digest, DeliveryResult(ok=False, attempts=0, error=str(exc)), (), exc
        )
    channel = channels.get(digest.channel)
    if channel is None:
        error = f"no {digest.channel.value} channel is configured"
        return DispatchOutcome(digest, DeliveryResult(ok=False, attempts=0, error=error), ())
    rendered = render_message(digest, tasks, system_url=system_url)
    result = channel.send(build_outbound(digest, rendered, contact, tasks))
    if not result.ok:
        return DispatchOutcome(digest, result, ())
    # The clock is read after the send returns: sent_at is when it happened, not when planned.
    return DispatchOutcome(digest, result, tuple(sent_records(digest, clock())))
