"""A webhook receiver that takes its time, and the notifier SIGKILLed while it does.

Every task of the 2022 document is red on 2023-01-02; only the supervising office's 督办 goes
out on the signed webhook (everyone else's to the inbox), so the receiver is handed a digest
or two, each taking it 5 s to answer. While it holds the first one, the notifier must not
keep a transaction open in Postgres (it used to hold one, with the digest's row locks, for
every send and every retry wait). Then the notifier is SIGKILLed mid-call: the digest it was
sending is left leased to the dead process, and once the lease runs out the restarted
notifier sends it again under the same Idempotency-Key and records it delivered once.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from shared.db import UnitOfWork
from tests.faults.conftest import StackFactory
from tests.faults.harness import FaultStack, wait_until
from tests.faults.receiver import WebhookReceiver
from tests.faults.test_notifier import DAY_AFTER, LOCAL_POLICY, settled
from tests.policy_text import without_quiet_hours

pytestmark = pytest.mark.faults

APP = "duban-notifier-faults"
OFFICE = "市政府办公厅督查室"
ANSWER_SECONDS = 5.0
LEASE_SECONDS = 15
NOTIFIER_ENV = {
    # Ticks on events only (after the debounce), so nothing else runs while the call is held.
    "DUBAN_ESCALATION_INTERVAL_SECONDS": "600",
    "DUBAN_ESCALATION_DEBOUNCE_SECONDS": "1",
    "DUBAN_DISPATCH_POLL_SECONDS": "0.2",
    # One attempt of at most 10 s per round: the lease must outlast it.
    "DUBAN_DELIVERY_ATTEMPTS": "1",
    "DUBAN_HTTP_TIMEOUT_SECONDS": "10",
    "DUBAN_DELIVERY_LEASE_SECONDS": str(LEASE_SECONDS),
    "DUBAN_DELIVERY_ROUNDS": "10",
    "DUBAN_REDELIVERY_BACKOFF_SECONDS": "1",
    "DUBAN_CONFIG_RELOAD_SECONDS": "60",
}


def office_on_webhook(stack: FaultStack, receiver: WebhookReceiver) -> dict[str, str]:
    """The shipped local ladder with the office's 督办 on the webhook, and its contact."""
    inbox = "      - role: supervising_office\n        channels: [inbox]\n"
    # At any hour: the clock (2 January 2023, 元旦) is a holiday, when quiet hours hold 督办.
    policy = without_quiet_hours(LOCAL_POLICY.read_text("utf-8"))
    assert inbox in policy, "the local policy no longer names the office's channels so"
    policy = policy.replace(inbox, inbox.replace("[inbox]", "[webhook]"), 1)
    contacts = (
        f"contacts:\n  - name: {OFFICE}\n    webhook_url: {receiver.url}\n"
        f"    webhook_secret: {receiver.secret}\n"
    )
    policy_path = stack.workdir / "policy.yaml"
    contacts_path = stack.workdir / "contacts.yaml"
    policy_path.write_text(policy, "utf-8")
    contacts_path.write_text(contacts, "utf-8")
    # The notifier's connections carry a name, so pg_stat_activity tells them apart.
    url = make_url(stack.database_url).update_query_dict({"application_name": APP})
    return {
        "DUBAN_POLICY_PATH": str(policy_path),
        "DUBAN_CONTACTS_PATH": str(contacts_path),
        "DATABASE_URL": url.render_as_string(hide_password=False),
    }


def notifier_backends(conn: Any) -> list[Any]:
    return list(
        conn.execute(
            text(
                "SELECT pid, state, xact_start, left(query, 120) AS query FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = :app"
            ),
            {"app": APP},
        ).all()
    )


def digest_row(stack: FaultStack, digest_id: str) -> Any:
    with UnitOfWork(stack.session_factory) as uow:
        return uow.session.execute(
            text(
                "SELECT status, rounds, lease_owner, leased_until > now() AS leased "
                "FROM notifier.digests WHERE id = :id"
            ),
            {"id": uuid.UUID(digest_id)},
        ).one()


@pytest.mark.timeout(300)
def test_slow_receiver_holds_no_transaction_and_a_killed_send_is_retried_after_its_lease(
    stack_factory: StackFactory,
) -> None:
    stack = stack_factory(clock_at=DAY_AFTER)
    stack.seed()
    receiver = WebhookReceiver(secrets.token_urlsafe(24), delay=ANSWER_SECONDS)
    receiver.start()
    observer = create_engine(stack.database_url, poolclass=pool.NullPool)
    try:
        stack.start_tracker()
        notifier = stack.service(
            "notifier", "notifier", {**NOTIFIER_ENV, **office_on_webhook(stack, receiver)}
        )
        receiver.hold_request(1)
        notifier.start()
        notifier.wait_ready()

        # The receiver has the first delivery in hand and takes 5 s over it. Look at the
        # notifier's connections all that time. Its consumer and ticks may have a short
        # transaction going at any moment; one that began before the call and is still open
        # when the call ends is one held across the network call.
        wait_until(receiver.holding.is_set, timeout=120, what="a delivery in flight")
        in_flight = receiver.received()[0].key
        looks: list[list[Any]] = []
        with observer.connect() as conn:
            call_began = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
            deadline = time.monotonic() + ANSWER_SECONDS
            while not looks or time.monotonic() < deadline:
                looks.append(notifier_backends(conn))
                conn.rollback()
                time.sleep(0.25)
        idle_in_transaction = [
            b for look in looks for b in look if b.state.startswith("idle in transaction")
        ]
        spanning = [b for b in looks[-1] if b.xact_start is not None and b.xact_start < call_began]
        print(
            f"\n[fault] receiver held {in_flight} {ANSWER_SECONDS:.0f}s: notifier connections "
            f"{min(map(len, looks))}..{max(map(len, looks))} over {len(looks)} looks, "
            f"seen idle in transaction {len(idle_in_transaction)} times, "
            f"open across the whole call: {len(spanning)}"
        )
        assert max(map(len, looks)) > 0, "no notifier connection found in pg_stat_activity"
        assert spanning == [], f"a notifier transaction stayed open across the call: {spanning}"

        # SIGKILL mid-call: the digest stays leased to the dead sender, unrecorded.
        notifier.kill()
        receiver.release()
        left = digest_row(stack, in_flight)
        assert (left.status, left.rounds) == ("sending", 0)
        assert left.lease_owner is not None and left.leased

        notifier.start()
        notifier.wait_ready()
        wait_until(lambda: settled(stack), timeout=150, what="every digest delivered")
        time.sleep(3)  # a poll or two more: nothing may be sent again
        deliveries = receiver.received()
    finally:
        receiver.release()
        receiver.stop()
        observer.dispose()

    with UnitOfWork(stack.session_factory) as uow:
        digests: dict[str, str] = dict(
            uow.session.execute(
                text("SELECT id::text, status FROM notifier.digests WHERE channel = 'webhook'")
            ).all()
        )
    keys = Counter(d.key for d in deliveries)
    print(
        f"[fault] webhook digests {len(digests)}, receiver got {len(deliveries)} "
        f"({dict(keys)}); restarted notifier log: "
        f"{notifier.log_count('dispatch.lease_expired')} lease takeovers"
    )
    assert all(d.signed for d in deliveries)
    assert set(digests.values()) == {"delivered"}
    # Everything the notifier composed reached the receiver; the digest killed mid-call went
    # twice under its own key, every other digest once.
    assert set(keys) == set(digests)
    assert keys[in_flight] == 2
    assert all(n == 1 for key, n in keys.items() if key != in_flight), keys
    # Recorded once, by the restarted notifier, after it took over the expired lease.
    done = digest_row(stack, in_flight)
    assert (done.status, done.rounds, done.lease_owner) == ("delivered", 1, None)
    log = notifier.log_path.read_text("utf-8", errors="replace").split("===== start #2")[1]
    takeovers = [line for line in log.splitlines() if "dispatch.lease_expired" in line]
    assert len(takeovers) == 1 and in_flight in takeovers[0]
    with UnitOfWork(stack.session_factory) as uow:
        statuses = Counter(
            uow.session.execute(
                text("SELECT status FROM notifier.notifications WHERE channel = 'webhook'")
            ).scalars()
        )
    assert set(statuses) == {"delivered"}
