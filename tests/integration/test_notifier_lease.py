"""Deliveries on leases: no transaction and no row lock while a receiver takes its time, and a
lease that runs out hands the digest to another sender under the same id."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, pool, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from services.notifier.adapters.sql import SqlUnitOfWork
from services.notifier.channels.base import DeliveryResult
from services.notifier.orm import DigestRow, NotificationRow
from services.notifier.settings import NotifierSettings
from services.notifier.usecases.delivery import claim_next_digest, record_outcome
from services.notifier.usecases.digests import compose_digests
from services.notifier.usecases.folding import apply_task_event
from services.notifier.workers import NotifierWorkers
from shared.clock import FixedClock
from shared.db import make_engine, make_session_factory
from shared.kafka import MessagePosition

from ..channels._servers import LocalHttpServer, Reply, SeenRequest
from .test_notifier_support import OFFICE, condition, sh, write_policy

pytestmark = pytest.mark.integration

SECRET = "lease-secret"
NOW = sh(7, 1, 9)


def office_on_webhook(tmp_path: Path, url: str) -> dict[str, Any]:
    """Only the office's 督办 goes out on the webhook: one digest per tick."""
    policy = write_policy(
        tmp_path / "policy.yaml",
        channels={
            "responsible_units": "[inbox]",
            "lead_unit_leadership": "[inbox]",
            "supervising_office": "[webhook]",
            "supervising_leader": "[inbox]",
        },
    )
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text(
        f"contacts:\n  - name: {OFFICE}\n    webhook_url: {url}/hook\n"
        f"    webhook_secret: {SECRET}\n",
        encoding="utf-8",
    )
    return {"policy_path": policy, "contacts_path": contacts}


def red_task(factory: sessionmaker[Session]) -> None:
    event = condition("T-A", at=sh(7, 1, 0, 0, 5), light="red", red_since=sh(7, 1, 0, 0))
    with SqlUnitOfWork(factory) as uow:
        apply_task_event(uow, event, position=MessagePosition("test", 0, 0))
        uow.commit()


@dataclass(frozen=True)
class Probe:
    """What another connection sees while the receiver has the request in hand."""

    others: int  # connections to this database besides the probe's own
    idle_in_transaction: int
    lease_owner: str | None
    row_locked: bool


def probe(engine: Any, digest_id: str) -> Probe:
    with engine.connect() as conn:
        others, idle = conn.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE state LIKE 'idle in transaction%') "
                "FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
        ).one()
        try:
            owner = conn.execute(
                text("SELECT lease_owner FROM notifier.digests WHERE id = :id FOR UPDATE NOWAIT"),
                {"id": digest_id},
            ).scalar_one()
            locked = False
        except OperationalError:
            owner, locked = None, True
        conn.rollback()
    return Probe(int(others), int(idle), owner, locked)


def test_no_transaction_or_row_lock_is_held_while_a_digest_is_sent(
    database_url: str, tmp_path: Path
) -> None:
    observer = create_engine(database_url, poolclass=pool.NullPool)
    probes: list[Probe] = []
    lock = threading.Lock()

    def slow_then_ok(seen: SeenRequest, index: int) -> Reply:
        # The first attempt is answered 503, so the channel waits and tries again.
        with lock:
            probes.append(probe(observer, seen.headers["Idempotency-Key"]))
        return Reply(status=503) if index == 0 else Reply()

    receiver = LocalHttpServer(slow_then_ok).start()
    try:
        settings = NotifierSettings(
            database_url=database_url,
            delivery_attempts=2,
            delivery_initial_wait_seconds=0.05,
            delivery_max_wait_seconds=0.1,
            delivery_jitter_seconds=0,
            http_timeout_seconds=5,
            delivery_lease_seconds=30,
            **office_on_webhook(tmp_path, receiver.url),
        )
        factory = make_session_factory(make_engine(database_url))
        workers = NotifierWorkers(settings, factory, FixedClock(NOW))
        red_task(factory)
        workers.tick()
        reports = workers.dispatch_pending()
        workers.stop()
    finally:
        receiver.stop()
        observer.dispose()

    assert [(r.outcome, r.attempts) for r in reports] == [("delivered", 2)]
    digest_id = str(reports[0].digest_id)
    assert [r.headers["Idempotency-Key"] for r in receiver.requests] == [digest_id] * 2
    assert len(probes) == 2
    for seen in probes:
        # The notifier's connection is there, idle, holding no transaction and no row lock;
        # the lease it committed before sending says who is sending.
        assert seen.others >= 1
        assert seen.idle_in_transaction == 0
        assert not seen.row_locked
        assert seen.lease_owner is not None and seen.lease_owner.startswith(workers.worker_id)
    with SqlUnitOfWork(factory) as uow:
        row = uow.session.get(DigestRow, uuid.UUID(digest_id))
        assert row is not None
        assert (row.status, row.rounds, row.attempts) == ("delivered", 1, 2)
        assert (row.lease_owner, row.leased_until) == (None, None)


def composed(tmp_path: Path, database_url: str) -> tuple[sessionmaker[Session], NotifierWorkers]:
    settings = NotifierSettings(
        database_url=database_url, **office_on_webhook(tmp_path, "http://127.0.0.1:9")
    )
    factory = make_session_factory(make_engine(database_url))
    workers = NotifierWorkers(settings, factory, FixedClock(NOW))
    red_task(factory)
    workers.tick()
    with SqlUnitOfWork(factory) as uow:
        assert compose_digests(uow, zone=workers.policy.zone, now=NOW, batch_size=100)
        uow.commit()
    return factory, workers


def run_out(factory: sessionmaker[Session]) -> None:
    """The lease's time passes (as it would while its sender lies dead)."""
    with SqlUnitOfWork(factory) as uow:
        uow.session.execute(
            update(DigestRow).values(leased_until=text("now() - interval '1 second'"))
        )
        uow.commit()


OK = DeliveryResult(ok=True, attempts=1, status_code=200)


def test_an_expired_lease_is_taken_over_under_the_same_id_and_the_late_record_is_dropped(
    database_url: str, tmp_path: Path
) -> None:
    factory, workers = composed(tmp_path, database_url)
    zone = workers.policy.zone

    def claim(worker: str) -> Any:
        with SqlUnitOfWork(factory) as uow:
            taken = claim_next_digest(uow, zone=zone, now=NOW, lease_seconds=60, worker=worker)
            uow.commit()
        return taken

    first = claim("a")
    assert first is not None and first.owner.startswith("a/")
    # Committed and unlocked, the lease alone keeps a second sender off it.
    assert claim("b") is None

    run_out(factory)
    second = claim("b")
    assert second is not None
    assert second.digest_id == first.digest_id and second.owner != first.owner
    assert second.digest is not None and second.digest.digest_id == first.digest_id

    # The first sender comes back late with a success: it no longer holds the lease, so
    # nothing is recorded, and the digest stays with the second sender.
    with SqlUnitOfWork(factory) as uow:
        late = record_outcome(uow, first, OK, clock=lambda: NOW, rounds=6, backoff_seconds=60)
        uow.commit()
    assert late.outcome == "lease_lost"
    with SqlUnitOfWork(factory) as uow:
        row = uow.session.get(DigestRow, first.digest_id)
        assert row is not None
        assert (row.status, row.rounds, row.lease_owner) == ("sending", 0, second.owner)

    with SqlUnitOfWork(factory) as uow:
        report = record_outcome(uow, second, OK, clock=lambda: NOW, rounds=6, backoff_seconds=60)
        uow.commit()
    assert report.outcome == "delivered"
    with SqlUnitOfWork(factory) as uow:
        row = uow.session.get(DigestRow, first.digest_id)
        assert row is not None
        assert (row.status, row.rounds, row.lease_owner, row.leased_until) == (
            "delivered",
            1,
            None,
            None,
        )
        members = uow.session.execute(
            select(NotificationRow.status).where(NotificationRow.digest_id == first.digest_id)
        ).scalars()
        assert set(members) == {"delivered"}
    workers.stop()


def test_a_sender_past_its_lease_still_records_while_nobody_took_over(
    database_url: str, tmp_path: Path
) -> None:
    factory, workers = composed(tmp_path, database_url)
    with SqlUnitOfWork(factory) as uow:
        claim = claim_next_digest(
            uow, zone=workers.policy.zone, now=NOW, lease_seconds=60, worker="a"
        )
        uow.commit()
    assert claim is not None
    run_out(factory)
    down = DeliveryResult(ok=False, attempts=4, error="connection refused", retryable=True)
    with SqlUnitOfWork(factory) as uow:
        report = record_outcome(uow, claim, down, clock=lambda: NOW, rounds=6, backoff_seconds=60)
        uow.commit()
    assert report.outcome == "retry"
    with SqlUnitOfWork(factory) as uow:
        row = uow.session.get(DigestRow, claim.digest_id)
        assert row is not None
        assert (row.status, row.rounds, row.lease_owner) == ("sending", 1, None)
        assert row.next_attempt_at == sh(7, 1, 9, 1)
    workers.stop()
