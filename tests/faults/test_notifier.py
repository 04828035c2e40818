"""The notifier SIGKILLed in the middle of a webhook delivery, and the webhook receiver down
for a while; every notification is delivered, each under one notification id.

Every task of the 2022 document is red on 2023-01-02, so the notifier plans a level-2 督办
notice per task to its lead units' leadership and to the supervising office, all on the
signed webhook channel, and sends them as one digest per recipient. The receiver holds one
delivery unanswered while the notifier is killed; the restarted notifier finds the receiver's
port closed, backs off, and delivers everything once it is back. A digest sent again after
the kill carries the same Idempotency-Key (the digest id): the receiver drops it as a replay.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pytest
from sqlalchemy import text

from shared import topics
from shared.clock import SHANGHAI
from shared.db import UnitOfWork
from tests.faults.conftest import StackFactory
from tests.faults.harness import ROOT, FaultStack, group_lag, wait_until
from tests.faults.receiver import Delivery, WebhookReceiver
from tests.policy_text import without_quiet_hours

pytestmark = pytest.mark.faults

DAY_AFTER = dt.datetime(2023, 1, 2, 10, 0, tzinfo=SHANGHAI)
LOCAL_POLICY = ROOT / "services" / "notifier" / "escalation" / "local_policy.yaml"
HOLD_AT = 6
DOWN_SECONDS = 10.0
NOTIFIER_ENV = {
    "DUBAN_ESCALATION_INTERVAL_SECONDS": "5",
    "DUBAN_ESCALATION_DEBOUNCE_SECONDS": "1",
    "DUBAN_DISPATCH_POLL_SECONDS": "0.2",
    "DUBAN_DELIVERY_ATTEMPTS": "2",
    "DUBAN_DELIVERY_INITIAL_WAIT_SECONDS": "0.2",
    "DUBAN_DELIVERY_MAX_WAIT_SECONDS": "0.5",
    "DUBAN_DELIVERY_JITTER_SECONDS": "0.1",
    # Rounds 1, 2, 4, 8… seconds apart: enough to outlast the receiver's outage.
    "DUBAN_DELIVERY_ROUNDS": "30",
    "DUBAN_REDELIVERY_BACKOFF_SECONDS": "1",
    "DUBAN_HTTP_TIMEOUT_SECONDS": "5",
    # The digest in flight at the kill stays leased to the dead notifier this long (a round
    # here takes at most 2 × 5 s plus the waits), then the restarted one sends it again.
    "DUBAN_DELIVERY_LEASE_SECONDS": "15",
    "DUBAN_CONFIG_RELOAD_SECONDS": "60",
}


def write_config(stack: FaultStack, receiver: WebhookReceiver) -> dict[str, str]:
    """The shipped local ladder on the webhook channel, and a contact for everyone in it."""
    # At any hour: the clock (2 January 2023, 元旦) is a holiday, when quiet hours hold 督办.
    policy = without_quiet_hours(LOCAL_POLICY.read_text("utf-8"))
    policy = policy.replace("channels: [inbox]", "channels: [webhook]")
    assert "channels: [webhook]" in policy, "the local policy no longer names its channels so"
    with UnitOfWork(stack.session_factory) as uow:
        names = {name for (name,) in uow.session.execute(text("SELECT name FROM tracker.units"))}
        names |= {
            name
            for (name,) in uow.session.execute(
                text("SELECT DISTINCT unnest(leaders) FROM tracker.tasks")
            )
        }
    names.add("市政府办公厅督查室")
    contacts = {
        "contacts": [
            {"name": name, "webhook_url": receiver.url, "webhook_secret": receiver.secret}
            for name in sorted(names)
        ]
    }
    policy_path = stack.workdir / "policy.yaml"
    contacts_path = stack.workdir / "contacts.yaml"
    policy_path.write_text(policy, "utf-8")
    # JSON is YAML.
    contacts_path.write_text(json.dumps(contacts, ensure_ascii=False, indent=1), "utf-8")
    return {"DUBAN_POLICY_PATH": str(policy_path), "DUBAN_CONTACTS_PATH": str(contacts_path)}


@dataclass
class NotificationBooks:
    """What the notifier planned and recorded, against what the receiver was handed."""

    planned: int
    by_status: dict[str, int]
    digests: int
    digests_by_status: dict[str, int]
    delivery_rounds: int
    received: int
    accepted: int
    replays_same_id: int
    unsigned: int
    recorded_not_received: int
    received_unknown: int
    notifications_under_two_ids: int
    notifications_never_received: int
    tasks_escalated_to_office: int
    examples: list[str] = field(default_factory=list)

    def show(self, title: str) -> None:
        """Print the books."""
        print(
            f"[books] {title}: notifications planned={self.planned} {self.by_status}; "
            f"digests={self.digests} {self.digests_by_status} rounds={self.delivery_rounds}; "
            f"receiver got={self.received} accepted={self.accepted} "
            f"replays_same_id={self.replays_same_id} unsigned={self.unsigned}; "
            f"recorded_but_never_received={self.recorded_not_received} "
            f"received_unknown={self.received_unknown} "
            f"under_two_ids={self.notifications_under_two_ids} "
            f"lost={self.notifications_never_received}; "
            f"tasks escalated to the office={self.tasks_escalated_to_office}"
        )
        if self.examples:
            print(f"[books]   {self.examples[:10]}")


def notification_books(stack: FaultStack, deliveries: list[Delivery]) -> NotificationBooks:
    """Reconcile the notifier's log with the receiver's."""
    with UnitOfWork(stack.session_factory) as uow:
        rows = uow.session.execute(
            text(
                "SELECT notification_id::text, status, digest_id::text, recipient_role, "
                "task_codes FROM notifier.notifications WHERE channel = 'webhook'"
            )
        ).all()
        digests = uow.session.execute(
            text("SELECT id::text, status, rounds FROM notifier.digests WHERE channel = 'webhook'")
        ).all()
    by_status = Counter(status for _, status, _, _, _ in rows)
    digest_status = {digest_id: status for digest_id, status, _ in digests}
    keys = Counter(d.key for d in deliveries)
    ids_by_notification: defaultdict[str, set[str]] = defaultdict(set)
    for delivery in deliveries:
        for notification_id in delivery.notification_ids:
            ids_by_notification[notification_id].add(delivery.key)
    examples: list[str] = []
    recorded_not_received = [
        d for d, status in digest_status.items() if status == "delivered" and d not in keys
    ]
    examples += [f"recorded delivered, never received: {d}" for d in recorded_not_received]
    under_two = [n for n, ids in ids_by_notification.items() if len(ids) > 1]
    examples += [f"notification {n} under ids {sorted(ids_by_notification[n])}" for n in under_two]
    never = [n for n, _, _, _, _ in rows if n not in ids_by_notification]
    examples += [f"never received: {n}" for n in never]
    office_tasks = {
        code
        for _, status, _, role, codes in rows
        if role == "supervising_office" and status == "delivered"
        for code in codes
    }
    return NotificationBooks(
        planned=len(rows),
        by_status=dict(by_status),
        digests=len(digests),
        digests_by_status=dict(Counter(digest_status.values())),
        delivery_rounds=sum(rounds for _, _, rounds in digests),
        received=len(deliveries),
        accepted=len(keys),
        replays_same_id=len(deliveries) - len(keys),
        unsigned=sum(1 for d in deliveries if not d.signed),
        recorded_not_received=len(recorded_not_received),
        received_unknown=sum(1 for key in keys if key not in digest_status),
        notifications_under_two_ids=len(under_two),
        notifications_never_received=len(never),
        tasks_escalated_to_office=len(office_tasks),
        examples=examples,
    )


def settled(stack: FaultStack) -> bool:
    """Task events all consumed, something planned, and nothing left to send."""
    with UnitOfWork(stack.session_factory) as uow:
        planned, open_ = uow.session.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE status IN ('pending', 'sending')) "
                "FROM notifier.notifications"
            )
        ).one()
        sending = uow.session.execute(
            text("SELECT count(*) FROM notifier.digests WHERE status = 'sending'")
        ).scalar_one()
    return (
        planned > 0
        and open_ == 0
        and sending == 0
        and stack.outbox_backlog() == 0
        and group_lag(stack.broker.bootstrap, "notifier", topics.TASK_EVENTS) == 0
    )


@pytest.mark.timeout(300)
def test_notifier_killed_mid_delivery_and_receiver_down_every_notification_delivered_once(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(clock_at=DAY_AFTER)
    stack.seed()
    receiver = WebhookReceiver(secrets.token_urlsafe(24), delay=0.2)
    receiver.start()
    try:
        env = {**NOTIFIER_ENV, **write_config(stack, receiver)}
        stack.start_tracker()
        notifier = stack.service("notifier", "notifier", env)
        receiver.hold_request(HOLD_AT)
        notifier.start()
        notifier.wait_ready()

        # The notifier dies while the receiver has a delivery in hand and has not answered.
        wait_until(receiver.holding.is_set, timeout=120, what=f"delivery #{HOLD_AT} in flight")
        notifier.kill()
        receiver.release()
        received_at_kill = len(receiver.received())
        # The receiver goes down; the notifier comes back to a closed port and backs off.
        receiver.stop()
        notifier.start()
        notifier.wait_ready()
        time.sleep(DOWN_SECONDS)
        received_while_down = len(receiver.received()) - received_at_kill
        receiver.start()
        came_back = time.monotonic()

        wait_until(lambda: settled(stack) and settled(stack), timeout=150, what="all delivered")
        time.sleep(3)  # a tick or two more: nothing new may be sent
        deliveries = receiver.received()
    finally:
        receiver.release()
        receiver.stop()
    books = notification_books(stack, deliveries)
    print(
        f"\n[fault] notifier SIGKILLed holding delivery #{HOLD_AT}; receiver down "
        f"{DOWN_SECONDS:.0f}s (received {received_while_down} meanwhile); all delivered "
        f"{time.monotonic() - came_back - 3:.1f}s after it came back; notifier log: "
        f"{notifier.log_count('dispatch.round_failed')} failed rounds"
    )
    books.show("notifier SIGKILL + receiver down")

    assert received_while_down == 0
    assert books.planned > 0 and books.by_status == {"delivered": books.planned}, books.by_status
    assert books.digests_by_status == {"delivered": books.digests}, books.digests_by_status
    assert books.delivery_rounds > books.digests, "the outage never made a delivery fail"
    assert books.unsigned == 0
    # Never recorded without being delivered, never delivered without being planned.
    assert books.recorded_not_received == 0
    assert books.received_unknown == 0
    # Every notification reached the receiver, under exactly one idempotency key …
    assert books.notifications_never_received == 0
    assert books.notifications_under_two_ids == 0
    # … and the only resend is the digest in flight at the kill, under its own key.
    assert books.replays_same_id == 1
    assert books.accepted == books.digests
    with UnitOfWork(stack.session_factory) as uow:
        tasks = uow.session.execute(text("SELECT count(*) FROM tracker.tasks")).scalar_one()
    assert books.tasks_escalated_to_office == tasks, "a red task never reached the office"
