"""The outbox relay on a real database: no transaction open while it waits on the broker,
and one relay at a time through a session lock that survives between batches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from services.tracker.orm import OutboxMessage
from services.tracker.outbox import relay_lock, relay_once
from shared.clock import SHANGHAI
from shared.db import UnitOfWork, make_engine, make_session_factory

NOW = dt.datetime(2022, 6, 1, 9, 0, tzinfo=SHANGHAI)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


def queue(factory: sessionmaker[Session], count: int) -> None:
    with UnitOfWork(factory) as uow:
        uow.session.add_all(
            OutboxMessage(topic="t", key=f"k{n % 3}", payload=f"{n}".encode()) for n in range(count)
        )
        uow.commit()


def open_transactions(engine: Engine) -> list[str]:
    """Connections to this database that sit inside a transaction, as Postgres sees them."""
    with engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT state || ': ' || left(query, 80) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND state LIKE 'idle in transaction%'"
                )
            ).scalars()
        )


@dataclass
class Acked:
    """A send whose acknowledgement is awaited: checks the database at that moment."""

    engine: Engine
    seen: list[list[str]]

    def get(self, timeout: float) -> None:
        self.seen.append(open_transactions(self.engine))


@dataclass
class WatchingProducer:
    """Stands in for the Kafka producer; each wait for an ack looks at pg_stat_activity."""

    engine: Engine
    sent: list[tuple[str, bytes, bytes | None]] = field(default_factory=list)
    seen: list[list[str]] = field(default_factory=list)

    def send(self, topic: str, *, key: bytes, value: bytes | None) -> Acked:
        self.sent.append((topic, key, value))
        return Acked(self.engine, self.seen)


def test_the_relay_waits_on_the_broker_with_no_transaction_open(
    engine: Engine, factory: sessionmaker[Session]
) -> None:
    queue(factory, 7)
    producer: Any = WatchingProducer(engine)
    lock = relay_lock(factory)
    try:
        published = relay_once(factory, producer, lock=lock, now=NOW)
    finally:
        lock.release()
    assert published == 7
    assert [value for _, _, value in producer.sent] == [f"{n}".encode() for n in range(7)]
    assert producer.seen and all(found == [] for found in producer.seen), producer.seen
    with UnitOfWork(factory) as uow:
        pending = uow.session.execute(
            select(OutboxMessage.id).where(OutboxMessage.published_at.is_(None))
        ).all()
    assert pending == []


def test_one_relay_at_a_time_and_a_standby_takes_over_a_lost_connection(
    engine: Engine, factory: sessionmaker[Session]
) -> None:
    queue(factory, 3)
    first, standby = relay_lock(factory), relay_lock(factory)
    producer: Any = WatchingProducer(engine)
    try:
        assert first.held()
        assert relay_once(factory, producer, lock=standby, now=NOW) == 0
        assert producer.sent == []
        # The holder's connection dies (a network cut, a restarted pooler): Postgres frees
        # the lock, the holder learns on its next look, and the standby takes over.
        with engine.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
                )
            )
        with pytest.raises(DBAPIError):
            first.held()
        assert relay_once(factory, producer, lock=standby, now=NOW) == 3
        assert not first.held(), "the lock is the standby's now"
    finally:
        first.release()
        standby.release()


def test_a_released_lock_does_not_stay_behind_on_the_pooled_connection(
    database_url: str, factory: sessionmaker[Session]
) -> None:
    # Another replica: its own engine, so it can never be handed the first one's connection.
    other = make_engine(database_url)
    first, second = relay_lock(factory), relay_lock(make_session_factory(other))
    try:
        assert first.held()
        first.release()
        # The connection went back to the first engine's pool; the lock must not stay on it.
        assert second.held()
        assert not first.held()
    finally:
        first.release()
        second.release()
        other.dispose()
