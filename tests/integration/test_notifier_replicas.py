"""Two notifier replicas on one database tick and dispatch at once: each message goes out once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.notifier.adapters.sql import SqlUnitOfWork
from services.notifier.channels.base import DeliveryResult, OutboundMessage
from services.notifier.escalation.policy import ChannelKind
from services.notifier.orm import DigestRow, NotificationRow
from services.notifier.settings import NotifierSettings
from services.notifier.usecases.folding import apply_task_event
from services.notifier.workers import NotifierWorkers
from shared.clock import FixedClock
from shared.db import make_engine, make_session_factory
from shared.kafka import MessagePosition

from .test_notifier_support import OFFICE, condition, sh, write_policy

pytestmark = pytest.mark.integration

LEADS = [f"测试单位{n:02d}" for n in range(1, 31)]


class SlowRecordingChannel:
    """Takes a little time per send, so the replicas overlap; records every message."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self._lock = threading.Lock()

    def send(self, message: OutboundMessage) -> DeliveryResult:
        time.sleep(0.01)
        with self._lock:
            self.sent[message.notification_id] += 1
        return DeliveryResult(ok=True, attempts=1, status_code=200)


def test_two_replicas_deliver_each_digest_once(database_url: str, tmp_path: Path) -> None:
    policy = write_policy(
        tmp_path / "policy.yaml",
        channels={
            "responsible_units": "[inbox]",
            "lead_unit_leadership": "[webhook]",
            "supervising_office": "[webhook, inbox]",
            "supervising_leader": "[inbox]",
        },
    )
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text(
        "contacts:\n"
        + "".join(
            f"  - name: {name}\n    webhook_url: http://127.0.0.1:9/{n}\n    webhook_secret: s\n"
            for n, name in enumerate([OFFICE, *LEADS])
        ),
        encoding="utf-8",
    )
    settings = NotifierSettings(
        database_url=database_url, policy_path=policy, contacts_path=contacts
    )
    clock = FixedClock(sh(7, 1, 9))
    channel = SlowRecordingChannel()
    replicas = []
    for _ in range(2):
        factory = make_session_factory(make_engine(database_url))
        replicas.append(
            NotifierWorkers(settings, factory, clock, channels={ChannelKind.WEBHOOK: channel})
        )
    with SqlUnitOfWork(replicas[0].session_factory) as uow:
        for offset, lead in enumerate(LEADS):
            event = condition(
                f"T-{offset:02d}",
                at=sh(7, 1, 0, 0, 5),
                light="red",
                red_since=sh(7, 1, 0, 0),
                lead=lead,
                co=(),
            )
            apply_task_event(uow, event, position=MessagePosition("test", 0, offset))
        uow.commit()

    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(workers: NotifierWorkers) -> None:
        try:
            start.wait()
            for _ in range(3):
                workers.tick()
                workers.dispatch_pending()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    for workers in replicas:
        workers.dispatch_pending()

    with SqlUnitOfWork(replicas[0].session_factory) as uow:
        by_status = dict(
            uow.session.execute(
                select(NotificationRow.channel, func.count())
                .where(NotificationRow.status == "delivered")
                .group_by(NotificationRow.channel)
            ).all()
        )
        digests = dict(
            uow.session.execute(
                select(DigestRow.channel, func.count())
                .where(DigestRow.status == "delivered")
                .group_by(DigestRow.channel)
            ).all()
        )
        total = uow.session.execute(select(func.count()).select_from(NotificationRow)).scalar_one()
    # 30 tasks: their leaderships and the office on the webhook, the office in its inbox.
    assert by_status == {"webhook": 60, "inbox": 30}
    assert total == 90
    # One webhook digest per leadership and one for the office; one office inbox digest.
    assert digests == {"webhook": 31, "inbox": 1}
    assert len(channel.sent) == 31
    assert set(channel.sent.values()) == {1}
