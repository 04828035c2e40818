"""The transactional outbox: events are written with the state change and relayed later."""

from __future__ import annotations

import datetime as dt
import threading

import structlog
from kafka import KafkaProducer
from kafka.errors import KafkaError
from pydantic import BaseModel
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from services.tracker import metrics
from services.tracker.orm import OutboxMessage
from shared.clock import Clock
from shared.db import UnitOfWork, engine_of
from shared.events import encode
from shared.locks import AdvisoryLock, SessionLock

log = structlog.get_logger(__name__)


def add(session: Session, *, topic: str, key: str, event: BaseModel | None) -> None:
    """Queue an event for publication in the caller's transaction; None queues a tombstone."""
    payload = encode(event) if event is not None else None
    session.add(OutboxMessage(topic=topic, key=key, payload=payload))


def relay_lock(session_factory: sessionmaker[Session]) -> SessionLock:
    """The relay's leadership: one relay publishes at a time across every replica, so events
    with the same key keep their order; the others wait as hot standbys."""
    return SessionLock(engine_of(session_factory), AdvisoryLock.OUTBOX_RELAY)


def relay_once(
    session_factory: sessionmaker[Session],
    producer: KafkaProducer,
    *,
    lock: SessionLock,
    now: dt.datetime,
    batch_size: int = 500,
    timeout: float = 10.0,
) -> int:
    """Publish one batch of pending events; returns how many were published.

    Three steps, none holding a transaction across the network: read the batch (a short
    read-only transaction), publish it and wait for the broker's acknowledgements (no
    transaction open; the leadership lock is a session lock on its own connection), then
    mark the rows published (a second short transaction). A crash between the last two
    publishes the batch again, under the same event ids.
    """
    if not lock.held():
        return 0
    with UnitOfWork(session_factory) as uow:
        batch = uow.session.execute(
            select(OutboxMessage.id, OutboxMessage.topic, OutboxMessage.key, OutboxMessage.payload)
            .where(OutboxMessage.published_at.is_(None))
            .order_by(OutboxMessage.id)
            .limit(batch_size)
        ).all()
    if not batch:
        return 0
    futures = [
        producer.send(row.topic, key=row.key.encode("utf-8"), value=row.payload) for row in batch
    ]
    for future in futures:
        future.get(timeout=timeout)
    with UnitOfWork(session_factory) as uow:
        uow.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_([row.id for row in batch]))
            .values(published_at=now)
        )
        uow.commit()
    return len(batch)


def drain(
    session_factory: sessionmaker[Session], producer: KafkaProducer, *, now: dt.datetime
) -> int:
    """Publish everything pending now, as the one relay (for tools, tests and benchmarks)."""
    lock = relay_lock(session_factory)
    try:
        total = 0
        while published := relay_once(session_factory, producer, lock=lock, now=now):
            total += published
        return total
    finally:
        lock.release()


def purge_published(session_factory: sessionmaker[Session], *, older_than: dt.datetime) -> int:
    """Delete events published before `older_than`."""
    with UnitOfWork(session_factory) as uow:
        result = uow.session.execute(
            delete(OutboxMessage).where(OutboxMessage.published_at < older_than)
        )
        uow.commit()
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def backlog(session_factory: sessionmaker[Session]) -> int:
    """Number of events waiting to be published."""
    with UnitOfWork(session_factory) as uow:
        return int(
            uow.session.execute(
                text("SELECT count(*) FROM tracker.outbox WHERE published_at IS NULL")
            ).scalar_one()
        )


def run_relay(
    session_factory: sessionmaker[Session],
    producer: KafkaProducer,
    *,
    stop_event: threading.Event,
    poll_seconds: float,
    clock: Clock,
) -> None:
    """Relay the outbox until stopped; broker or database outages are retried."""
    lock = relay_lock(session_factory)
    try:
        _relay_until_stopped(
            session_factory,
            producer,
            lock,
            stop_event=stop_event,
            poll_seconds=poll_seconds,
            clock=clock,
        )
    finally:
        lock.release()


def _relay_until_stopped(
    session_factory: sessionmaker[Session],
    producer: KafkaProducer,
    lock: SessionLock,
    *,
    stop_event: threading.Event,
    poll_seconds: float,
    clock: Clock,
) -> None:
    backoff = poll_seconds
    while not stop_event.is_set():
        try:
            published = relay_once(session_factory, producer, lock=lock, now=clock.now())
            metrics.OUTBOX_PUBLISHED.inc(published)
            backoff = poll_seconds
            if published:
                continue
        except (KafkaError, OSError) as exc:
            log.warning("outbox.publish_failed", error=str(exc))
            backoff = min(max(backoff * 2, 0.5), 10.0)
        except Exception as exc:  # the database may be briefly away; keep relaying after
            log.warning("outbox.relay_failed", error=repr(exc))
            backoff = min(max(backoff * 2, 0.5), 10.0)
        stop_event.wait(backoff)
