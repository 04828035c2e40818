"""Stopping and crashing the dispatcher mid-batch, then starting another on the same database."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from devtools.servers import Broker
from services.notifier.channels.base import Channel, DeliveryResult, OutboundMessage
from services.notifier.channels.inbox import InboxChannel
from services.notifier.channels.webhook import WebhookChannel
from services.notifier.escalation.policy import ChannelKind
from services.notifier.orm import DigestRow, NotificationRow
from shared.clock import FixedClock
from shared.db import UnitOfWork

from ..channels._servers import LocalHttpServer, Reply, SeenRequest
from .test_notifier_support import (
    OFFICE,
    UNITS,
    condition,
    notifier_settings,
    publish_keys,
    running_notifier,
    sh,
    write_policy,
)

pytestmark = pytest.mark.integration

SECRET = "restart-secret"
LEADS = UNITS[:5]


class SimulatedCrash(BaseException):
    """The process dies between a send and the commit that records it."""


class CrashAfterSends:
    """Sends for real, then 'crashes' right after the n-th send succeeded."""

    def __init__(self, inner: Channel, crash_on: int) -> None:
        self.inner = inner
        self.crash_on = crash_on
        self.sent = 0

    def send(self, message: OutboundMessage) -> DeliveryResult:
        result = self.inner.send(message)
        self.sent += 1
        if self.sent == self.crash_on:
            raise SimulatedCrash(message.notification_id)
        return result


def contacts(tmp_path: Path, url: str) -> Path:
    lines = ["contacts:"]
    for name in (OFFICE, *LEADS):
        lines += [
            f"  - name: {name}",
            f"    webhook_url: {url}/hook",
            f"    webhook_secret: {SECRET}",
        ]
    path = tmp_path / "contacts.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def digest_states(factory: Any) -> dict[str, str]:
    with UnitOfWork(factory) as uow:
        return {str(d.id): d.status for d in uow.session.execute(select(DigestRow)).scalars()}


def test_restart_mid_batch_sends_nothing_twice(
    database_url: str, broker: Broker, tmp_path: Path
) -> None:
    lock = threading.Lock()
    received: list[SeenRequest] = []

    def record(seen: SeenRequest, _index: int) -> Reply:
        with lock:
            received.append(seen)
        return Reply()

    receiver = LocalHttpServer(record).start()
    try:
        policy = write_policy(
            tmp_path / "policy.yaml",
            channels={
                "responsible_units": "[inbox]",
                "lead_unit_leadership": "[webhook]",
                "supervising_office": "[webhook]",
                "supervising_leader": "[inbox]",
            },
        )
        common = {
            "policy_path": policy,
            "contacts_path": contacts(tmp_path, receiver.url),
            # A crashed sender's lease runs out this soon (a round takes at most ~4 s here).
            "delivery_lease_seconds": 5.0,
        }
        # Replica A plans but does not dispatch in the background: the test drives it.
        paused = notifier_settings(
            database_url, broker.bootstrap, dispatcher_enabled=False, **common
        )
        keys = publish_keys(paused)
        clock = FixedClock(sh(7, 1, 9))
        red: dict[str, Any] = {"light": "red", "red_since": sh(7, 1, 0, 0)}
        events = [
            condition(f"T-{n}", at=sh(7, 1, 0, 0, 5), lead=lead, co=(), **red)
            for n, lead in enumerate(LEADS, start=1)
        ]
        with running_notifier(paused, start=clock.now(), keys=keys, clock=clock) as first:
            first.publish(*events)
            tick = first.workers.tick()
            assert tick.inserted == 10  # five leaderships and the office, for five tasks
            # Stopped after two sends: both recorded delivered, the rest still to go.
            reports = first.workers.dispatch_pending(limit=2)
            assert [r.outcome for r in reports] == ["delivered", "delivered"]
        states = digest_states(first.session_factory)
        assert sorted(states.values()) == ["delivered"] * 2 + ["sending"] * 4
        assert len(received) == 2

        # Replica B crashes right after its first send, before recording it.
        crashing = CrashAfterSends(WebhookChannel(timeout=2.0), crash_on=1)
        channels: dict[ChannelKind, Channel] = {
            ChannelKind.WEBHOOK: crashing,
            ChannelKind.INBOX: InboxChannel(),
        }
        with (
            running_notifier(
                paused, start=clock.now(), keys=keys, clock=clock, channels=channels
            ) as second,
            pytest.raises(SimulatedCrash) as crash,
        ):
            second.workers.dispatch_pending()
        crashed_id = str(crash.value)
        assert len(received) == 3
        # The receiver got it, but nothing recorded it: the log is as before, and the digest
        # is still leased to the crashed replica.
        assert digest_states(first.session_factory) == states
        assert states[crashed_id] == "sending"
        with UnitOfWork(first.session_factory) as uow:
            crashed = uow.session.get(DigestRow, uuid.UUID(crashed_id))
            assert crashed is not None and crashed.lease_owner is not None

        # Replica C (a normal one) resumes: what was delivered is not sent again; the digest
        # whose send was not recorded goes again, once its lease has run out, with the same
        # idempotency key.
        normal = notifier_settings(database_url, broker.bootstrap, **common)
        with running_notifier(normal, start=clock.now(), keys=keys, clock=clock) as third:
            third.settle()
            third.workers.tick()  # a tick after the restart plans nothing new either
            third.settle()
            rows = third.notifications()
            assert len(rows) == 10
            assert {r["status"] for r in rows} == {"delivered"}
        keys_seen = [r.headers["Idempotency-Key"] for r in received]
        assert len(received) == 7
        assert len(set(keys_seen)) == 6
        assert [k for k in set(keys_seen) if keys_seen.count(k) > 1] == [crashed_id]
        assert set(keys_seen) == set(digest_states(first.session_factory))
        with UnitOfWork(first.session_factory) as uow:
            delivered = uow.session.execute(
                select(NotificationRow.id).where(NotificationRow.status == "delivered")
            ).all()
        assert len(delivered) == 10
    finally:
        receiver.stop()
