"""The claim/send/record steps of a delivery, as far as they are pure: what a round decides,
what a claimed digest sends, and how long a lease must last."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from services.notifier.channels.base import DeliveryResult, OutboundMessage, TransientDeliveryError
from services.notifier.channels.retry import RetryPolicy, send_with_retries
from services.notifier.escalation.contacts import Contact, ContactBook
from services.notifier.escalation.engine import Digest, evaluate, group_into_digests
from services.notifier.escalation.policy import ChannelKind, RecipientRole, default_policy
from services.notifier.settings import NotifierSettings
from services.notifier.usecases.delivery import Claim, next_round_at, next_step, send_claimed

from ._builders import OFFICE, sh, task

RED = task(light="red", red_since=sh(7, 1, 0, 5), days_overdue=1)
BOOK = ContactBook.from_mapping(
    {
        (RecipientRole.SUPERVISING_OFFICE, OFFICE): Contact(
            webhook_url="http://127.0.0.1:9/hook", webhook_secret="s3cret"
        ),
    }
)


class RecordingChannel:
    def __init__(self, *, explode: bool = False) -> None:
        self.sent: list[OutboundMessage] = []
        self.explode = explode

    def send(self, message: OutboundMessage) -> DeliveryResult:
        self.sent.append(message)
        if self.explode:
            raise RuntimeError("a bug in the channel")
        return DeliveryResult(ok=True, attempts=1, status_code=200)


def office_digest() -> Digest:
    digests = group_into_digests(
        evaluate([RED], [], [], [], default_policy(), sh(7, 1)).notifications
    )
    return next(
        d
        for d in digests
        if d.recipient.role is RecipientRole.SUPERVISING_OFFICE and d.channel is ChannelKind.WEBHOOK
    )


def claim_of(digest: Digest | None, unsendable: str | None = None) -> Claim:
    digest_id = digest.digest_id if digest else uuid.uuid4()
    return Claim(
        digest_id=digest_id,
        owner="host:1/abc",
        leased_until=sh(7, 1, 9, 10),
        claimed_at=sh(7, 1, 9, 5),
        channel="webhook",
        recipient=OFFICE,
        digest=digest,
        tasks={RED.task_id: RED},
        unsendable=unsendable,
    )


def clock() -> datetime:
    return sh(7, 1, 9, 6)


OK = DeliveryResult(ok=True, attempts=1, status_code=200)
DOWN = DeliveryResult(ok=False, attempts=4, error="connection refused", retryable=True)
REFUSED = DeliveryResult(ok=False, attempts=1, status_code=400, error="HTTP 400")


def test_a_round_is_delivered_retried_or_failed() -> None:
    assert next_step(OK, rounds_done=6, rounds=6) == "delivered"
    assert next_step(DOWN, rounds_done=1, rounds=6) == "retry"
    assert next_step(DOWN, rounds_done=5, rounds=6) == "retry"
    # The last round's transient failure is final, and so is a refusal in the first.
    assert next_step(DOWN, rounds_done=6, rounds=6) == "failed"
    assert next_step(REFUSED, rounds_done=1, rounds=6) == "failed"


def test_rounds_back_off_doubling() -> None:
    start = sh(7, 1, 9)
    waits = [next_round_at(start, rounds_done=n, backoff_seconds=60) - start for n in (1, 2, 3)]
    assert waits == [timedelta(seconds=60), timedelta(seconds=120), timedelta(seconds=240)]


def test_a_claimed_digest_goes_out_under_its_own_id() -> None:
    channel = RecordingChannel()
    digest = office_digest()
    sent = send_claimed(
        claim_of(digest),
        contacts=BOOK,
        channels={ChannelKind.WEBHOOK: channel},
        clock=clock,
        system_url=None,
    )
    assert not isinstance(sent, DeliveryResult) and sent.result.ok
    assert [m.notification_id for m in channel.sent] == [str(digest.digest_id)]


def test_an_unsendable_claim_fails_without_sending() -> None:
    channel = RecordingChannel()
    sent = send_claimed(
        claim_of(None, unsendable="无法发送: ValueError('bad role')"),
        contacts=BOOK,
        channels={ChannelKind.WEBHOOK: channel},
        clock=clock,
        system_url=None,
    )
    assert sent == DeliveryResult(ok=False, attempts=0, error="无法发送: ValueError('bad role')")
    assert channel.sent == []


def test_a_channel_that_raises_fails_the_digest_instead_of_leaving_it_leased() -> None:
    sent = send_claimed(
        claim_of(office_digest()),
        contacts=BOOK,
        channels={ChannelKind.WEBHOOK: RecordingChannel(explode=True)},
        clock=clock,
        system_url=None,
    )
    assert isinstance(sent, DeliveryResult)
    assert (sent.ok, sent.retryable) == (False, False)
    assert sent.error is not None and "a bug in the channel" in sent.error


def test_longest_waits_follow_the_retry_policy() -> None:
    # Waits 1+1, 2+1, 4+1 seconds (jitter at its most), the last capped at 4.
    assert RetryPolicy(max_attempts=4, initial_wait=1, max_wait=4, jitter=1).longest_waits() == 9
    assert RetryPolicy(max_attempts=1).longest_waits() == 0

    # No real attempt ever sleeps longer in total than that bound.
    slept: list[float] = []

    def down(_message: OutboundMessage) -> int:
        raise TransientDeliveryError("connection refused")

    retry = RetryPolicy(max_attempts=4, initial_wait=1, max_wait=4, jitter=1)
    message = OutboundMessage("id", "r", "s", "t", "m", "h")
    send_with_retries(down, message, retry, sleep=slept.append)
    assert len(slept) == 3 and sum(slept) <= retry.longest_waits()


def test_the_default_lease_outlasts_a_default_round() -> None:
    settings = NotifierSettings()
    assert settings.delivery_lease_seconds == 300
    # 4 attempts × 10 s, and waits of at most 2 + 3 + 5 s.
    assert settings.longest_round_seconds() == 50


def test_a_lease_shorter_than_a_round_is_refused() -> None:
    with pytest.raises(ValidationError, match="DUBAN_DELIVERY_LEASE_SECONDS"):
        NotifierSettings(delivery_lease_seconds=30, delivery_attempts=3, http_timeout_seconds=10)
    # The SMTP timeout counts once e-mail is configured.
    NotifierSettings(delivery_lease_seconds=60, smtp_timeout_seconds=30)
    with pytest.raises(ValidationError, match="DUBAN_DELIVERY_LEASE_SECONDS"):
        NotifierSettings(
            delivery_lease_seconds=60,
            smtp_timeout_seconds=30,
            smtp_host="smtp.example.gov.cn",
            smtp_sender="duban@example.gov.cn",
        )
