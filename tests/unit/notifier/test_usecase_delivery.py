"""Delivering one digest (usecases/delivery.py) on the fakes: delivered, retried with
backoff, failed after its rounds, and a lease lost to another sender."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.notifier.channels.base import DeliveryResult, OutboundMessage
from services.notifier.escalation.contacts import Contact, ContactBook
from services.notifier.escalation.policy import ChannelKind, RecipientRole
from services.notifier.usecases.delivery import (
    DeliveryReport,
    claim_next_digest,
    deliver_next_digest,
    record_outcome,
)
from services.notifier.usecases.digests import compose_digests
from services.notifier.usecases.folding import apply_task_event
from services.notifier.usecases.ports import DigestRecord
from services.notifier.usecases.tick import run_tick

from ._builders import OFFICE, sh
from ._scenario import POSITION, office_webhook_policy, red
from .fakes import FakeStore

POLICY = office_webhook_policy()
BOOK = ContactBook.from_mapping(
    {
        (RecipientRole.SUPERVISING_OFFICE, OFFICE): Contact(
            webhook_url="http://127.0.0.1:9/hook", webhook_secret="s3cret"
        )
    }
)
OK = DeliveryResult(ok=True, attempts=1, status_code=200)
DOWN = DeliveryResult(ok=False, attempts=3, status_code=503, error="HTTP 503", retryable=True)
REFUSED = DeliveryResult(ok=False, attempts=1, status_code=400, error="HTTP 400")


class ScriptedChannel:
    """Answers each send with the next result of its script."""

    def __init__(self, *results: DeliveryResult) -> None:
        self.results = list(results)
        self.sent: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> DeliveryResult:
        self.sent.append(message)
        return self.results.pop(0)


def composed_store() -> FakeStore:
    """One office digest on the webhook, composed and awaiting its first round."""
    store = FakeStore()
    with store.uow() as uow:
        apply_task_event(uow, red(), position=POSITION)
        uow.commit()
    with store.uow() as uow:
        run_tick(uow, policy=POLICY, now=sh(7, 1, 9))
        uow.commit()
    with store.uow() as uow:
        assert compose_digests(uow, zone=POLICY.zone, now=sh(7, 1, 9), batch_size=100) == 1
        uow.commit()
    return store


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def deliver(
    store: FakeStore, channel: ScriptedChannel, clock: Clock, rounds: int = 3
) -> DeliveryReport | None:
    return deliver_next_digest(
        store.uow,
        worker="host:1",
        lease_seconds=300,
        zone=POLICY.zone,
        contacts=BOOK,
        channels={ChannelKind.WEBHOOK: channel},
        clock=clock,
        rounds=rounds,
        backoff_seconds=60,
    )


def webhook_digest(store: FakeStore) -> DigestRecord:
    """The office's webhook digest (the inbox ones were delivered by the tick)."""
    (digest,) = [d for d in store.tables.digests.values() if d.channel == "webhook"]
    return digest


def test_a_delivered_digest_and_its_notifications_are_recorded_delivered() -> None:
    store = composed_store()
    channel = ScriptedChannel(OK)
    report = deliver(store, channel, Clock(sh(7, 1, 9, 1)))
    assert report is not None and (report.outcome, report.attempts) == ("delivered", 1)
    digest = webhook_digest(store)
    assert [m.notification_id for m in channel.sent] == [str(digest.id)]
    assert (digest.status, digest.rounds, digest.attempts, digest.status_code) == (
        "delivered",
        1,
        1,
        200,
    )
    assert (digest.lease_owner, digest.leased_until, digest.delivered_at) == (
        None,
        None,
        sh(7, 1, 9, 1),
    )
    members = [n for n in store.tables.notifications.values() if n.digest_id == digest.id]
    assert {(n.status, n.attempts, n.delivered_at) for n in members} == {
        ("delivered", 1, sh(7, 1, 9, 1))
    }
    assert deliver(store, ScriptedChannel(), Clock(sh(7, 1, 9, 2))) is None  # nothing else due


@pytest.mark.parametrize(("rounds_done", "wait"), [(1, 60), (2, 120), (3, 240)])
def test_a_transient_failure_schedules_the_next_round_with_doubling_backoff(
    rounds_done: int, wait: int
) -> None:
    store = composed_store()
    clock = Clock(sh(7, 1, 9, 1))
    for _ in range(rounds_done):
        report = deliver(store, ScriptedChannel(DOWN), clock, rounds=6)
        assert report is not None and report.outcome == "retry"
        digest = webhook_digest(store)
        assert digest.next_attempt_at is not None
        # Not due again until its round has come.
        assert deliver(store, ScriptedChannel(), clock, rounds=6) is None
        started = clock.now
        clock.now = digest.next_attempt_at
    digest = webhook_digest(store)
    assert digest.next_attempt_at == started + timedelta(seconds=wait)
    assert (digest.status, digest.rounds, digest.attempts, digest.lease_owner) == (
        "sending",
        rounds_done,
        3 * rounds_done,
        None,
    )
    assert digest.last_error == "HTTP 503"
    members = [n for n in store.tables.notifications.values() if n.digest_id == digest.id]
    assert {(n.status, n.last_error) for n in members} == {("pending", "HTTP 503")}


@pytest.mark.parametrize("rounds", [1, 2, 4])
def test_a_digest_fails_once_its_rounds_are_used_up(rounds: int) -> None:
    store = composed_store()
    clock = Clock(sh(7, 1, 9, 1))
    outcomes = []
    for _ in range(rounds):
        report = deliver(store, ScriptedChannel(DOWN), clock, rounds=rounds)
        assert report is not None
        outcomes.append(report.outcome)
        digest = webhook_digest(store)
        clock.now = (digest.next_attempt_at or clock.now) + timedelta(seconds=1)
    assert outcomes == ["retry"] * (rounds - 1) + ["failed"]
    digest = webhook_digest(store)
    assert (digest.status, digest.rounds, digest.next_attempt_at) == ("failed", rounds, None)
    assert digest.failed_at is not None
    members = [n for n in store.tables.notifications.values() if n.digest_id == digest.id]
    assert {n.status for n in members} == {"failed"}
    assert deliver(store, ScriptedChannel(), clock) is None


def test_a_refusal_fails_in_the_first_round() -> None:
    store = composed_store()
    report = deliver(store, ScriptedChannel(REFUSED), Clock(sh(7, 1, 9, 1)), rounds=6)
    assert report is not None and (report.outcome, report.error) == ("failed", "HTTP 400")


def test_a_missing_contact_fails_the_digest_without_sending() -> None:
    store = composed_store()
    channel = ScriptedChannel()
    report = deliver_next_digest(
        store.uow,
        worker="host:1",
        lease_seconds=300,
        zone=POLICY.zone,
        contacts=ContactBook.from_mapping({}),
        channels={ChannelKind.WEBHOOK: channel},
        clock=Clock(sh(7, 1, 9, 1)),
        rounds=6,
        backoff_seconds=60,
    )
    assert report is not None and report.outcome == "failed" and channel.sent == []


def test_a_lease_keeps_others_off_and_a_lost_lease_records_nothing() -> None:
    store = composed_store()
    now = sh(7, 1, 9, 1)

    def claim(worker: str) -> object:
        with store.uow() as uow:
            taken = claim_next_digest(
                uow, zone=POLICY.zone, now=now, lease_seconds=60, worker=worker
            )
            uow.commit()
        return taken

    first = claim("a")
    assert first is not None
    digest = webhook_digest(store)
    assert digest.lease_owner == first.owner  # type: ignore[attr-defined]
    assert digest.leased_until == store.database_now + timedelta(seconds=60)
    assert claim("b") is None  # the lease is running (on the storage's clock)

    store.database_now += timedelta(seconds=61)  # the first sender died mid-send
    second = claim("b")
    assert second is not None and second.digest_id == first.digest_id  # type: ignore[attr-defined]

    with store.uow() as uow:
        late = record_outcome(uow, first, OK, clock=lambda: now, rounds=6, backoff_seconds=60)  # type: ignore[arg-type]
        uow.commit()
    assert late.outcome == "lease_lost"
    digest = webhook_digest(store)
    assert (digest.status, digest.rounds, digest.lease_owner) == ("sending", 0, second.owner)  # type: ignore[attr-defined]

    with store.uow() as uow:
        report = record_outcome(uow, second, OK, clock=lambda: now, rounds=6, backoff_seconds=60)  # type: ignore[arg-type]
        uow.commit()
    assert report.outcome == "delivered"


def test_a_sender_past_its_lease_still_records_while_nobody_took_over() -> None:
    store = composed_store()
    with store.uow() as uow:
        claim = claim_next_digest(
            uow, zone=POLICY.zone, now=sh(7, 1, 9, 1), lease_seconds=60, worker="a"
        )
        uow.commit()
    assert claim is not None
    store.database_now += timedelta(hours=1)
    with store.uow() as uow:
        report = record_outcome(
            uow, claim, DOWN, clock=lambda: sh(7, 1, 9, 2), rounds=6, backoff_seconds=60
        )
        uow.commit()
    assert report.outcome == "retry"


def test_an_unsendable_digest_fails_visibly() -> None:
    store = composed_store()
    digest = webhook_digest(store)
    digest.recipient_role = "nobody"
    channel = ScriptedChannel()
    report = deliver(store, channel, Clock(sh(7, 1, 9, 1)))
    assert report is not None and report.outcome == "failed"
    assert report.error is not None and "nobody" in report.error and channel.sent == []
