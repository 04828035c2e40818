"""From digest to delivery: records exist only for deliveries that happened."""

from __future__ import annotations

from datetime import datetime

from services.notifier.channels.base import DeliveryResult, OutboundMessage
from services.notifier.escalation.contacts import Contact, ContactBook
from services.notifier.escalation.engine import Digest, evaluate, group_into_digests
from services.notifier.escalation.outbound import dispatch_digest
from services.notifier.escalation.policy import ChannelKind, RecipientRole, default_policy

from ._builders import OFFICE, sh, task


class FakeChannel:
    """Records what it was asked to send and answers as told."""

    def __init__(self, ok: bool) -> None:
        self.ok = ok
        self.sent: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> DeliveryResult:
        self.sent.append(message)
        if self.ok:
            return DeliveryResult(ok=True, attempts=1, status_code=200)
        return DeliveryResult(ok=False, attempts=3, status_code=503, error="HTTP 503")


BOOK = ContactBook.from_mapping(
    {
        (RecipientRole.SUPERVISING_OFFICE, OFFICE): Contact(
            email="dcs@example.gov.cn",
            webhook_url="http://127.0.0.1:9/hook",
            webhook_secret="s3cret",
        ),
    }
)
RED = task(light="red", red_since=sh(7, 1, 0, 5), days_overdue=1)
TASKS = {RED.task_id: RED}


def office_webhook_digest() -> Digest:
    digests = group_into_digests(
        evaluate([RED], [], [], [], default_policy(), sh(7, 1)).notifications
    )
    return next(
        d
        for d in digests
        if d.recipient.role is RecipientRole.SUPERVISING_OFFICE and d.channel is ChannelKind.WEBHOOK
    )


def clock() -> datetime:
    return sh(7, 1, 9, 5)


def test_delivered_digest_yields_history_rows() -> None:
    channel = FakeChannel(ok=True)
    digest = office_webhook_digest()
    outcome = dispatch_digest(
        digest, tasks=TASKS, contacts=BOOK, channels={ChannelKind.WEBHOOK: channel}, clock=clock
    )
    assert outcome.result.ok
    assert [(r.task_id, r.level, r.recipient, r.sent_at) for r in outcome.records] == [
        ("T-001", 2, digest.recipient, sh(7, 1, 9, 5))
    ]
    message = channel.sent[0]
    assert message.notification_id == str(digest.digest_id)
    assert (message.address, message.secret) == ("http://127.0.0.1:9/hook", "s3cret")
    assert message.payload["schema_version"] == 1
    assert message.payload["notification_id"] == str(digest.digest_id)
    assert message.payload["tasks"][0]["task_id"] == "T-001"
    assert message.payload["tasks"][0]["days_overdue"] == 1
    assert message.subject.startswith("【督办】1 项重点工作已逾期")


def test_failed_delivery_records_nothing() -> None:
    channel = FakeChannel(ok=False)
    outcome = dispatch_digest(
        office_webhook_digest(),
        tasks=TASKS,
        contacts=BOOK,
        channels={ChannelKind.WEBHOOK: channel},
        clock=clock,
    )
    assert not outcome.result.ok
    assert outcome.records == ()
    assert len(channel.sent) == 1


def test_missing_contact_is_a_visible_failure() -> None:
    digests = group_into_digests(
        evaluate([RED], [], [], [], default_policy(), sh(7, 1)).notifications
    )
    leadership = next(d for d in digests if d.recipient.role is RecipientRole.LEAD_UNIT_LEADERSHIP)
    channel = FakeChannel(ok=True)
    outcome = dispatch_digest(
        leadership, tasks=TASKS, contacts=BOOK, channels={leadership.channel: channel}, clock=clock
    )
    assert not outcome.result.ok
    assert outcome.missing_contact is not None
    assert "市住房城乡建设委" in str(outcome.result.error)
    assert outcome.records == ()
    assert channel.sent == []


def test_unconfigured_channel_is_a_visible_failure() -> None:
    outcome = dispatch_digest(
        office_webhook_digest(), tasks=TASKS, contacts=BOOK, channels={}, clock=clock
    )
    assert not outcome.result.ok
    assert "webhook" in str(outcome.result.error)
    assert outcome.records == ()
