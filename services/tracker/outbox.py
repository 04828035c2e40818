"""The transactional outbox: events are written with the state change and relayed later."""

from __future__ import annotations

import datetime as dt
import threading

import structlog
from kafka import KafkaProducer
from kafka.errors import KafkaError
from pydantic import BaseModel
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from services.tracker import metrics
from services.tracker.orm import OutboxMessage
from shared.clock import Clock
from shared.db import UnitOfWork
from shared.events import encode
from shared.locks import AdvisoryLock

log = structlog.get_logger(__name__)

# Only one relay publishes at a time, so events with the same key keep their order even with
# several tracker replicas; the others wait as hot standbys.
RELAY_LOCK_ID = int(AdvisoryLock.OUTBOX_RELAY)


def add(session: Session, *, topic: str, key: str, event: BaseModel | None) -> None:
    """Queue an event for publication in the caller's transaction; None queues a tombstone."""
    payload = encode(event) if event is not None else None
    session.add(OutboxMessage(topic=topic, key=key, payload=payload))


def relay_once(
    session_factory: sessionmaker[Session],
    producer: KafkaProducer,
    *,
    now: dt.datetime,
    batch_size: int = 500,
    timeout: float = 10.0,
) -> int:
    """Publish one batch of pending events; returns how many were published."""
    with UnitOfWork(session_factory) as uow:
        session = uow.session
        if not session.execute(select(func.pg_try_advisory_xact_lock(RELAY_LOCK_ID))).scalar():
            return 0
        rows = (
            session.execute(
                select(OutboxMessage)
                .where(OutboxMessage.published_at.is_(None))
                .order_by(OutboxMessage.id)
                .limit(batch_size)
            )
            .scalars()
            .all()
        )
        if not rows:
            return 0
        futures = [
            producer.send(row.topic, key=row.key.encode("utf-8"), value=row.payload) for row in rows
        ]
        for future in futures:
            future.get(timeout=timeout)
        for row in rows:
            row.published_at = now
        uow.commit()
        return len(rows)


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
    backoff = poll_seconds
    while not stop_event.is_set():
        try:
            published = relay_once(session_factory, producer, now=clock.now())
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
