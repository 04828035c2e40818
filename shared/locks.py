"""Every Postgres advisory lock key in the code base, in one place, so no two ever collide.

The services may share one database (the tests and `make run` do), so a tracker lock and a
notifier lock with the same number would serialise unrelated work. `@unique` makes a clash an
import-time error.
"""

import contextlib
from enum import IntEnum, unique

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

# "duban" in ASCII, shifted left a byte; the low byte names the lock.
_BASE = 0x6475_6261_6E00


@unique
class AdvisoryLock(IntEnum):
    """The advisory lock keys (pg_advisory_xact_lock / pg_try_advisory_xact_lock)."""

    # tracker
    OUTBOX_RELAY = _BASE + 0x01
    CATALOG_IMPORT = _BASE + 0x11
    # notifier
    ESCALATION_TICK = _BASE + 0x21
    DIGEST_COMPOSE = _BASE + 0x22


class SessionLock:
    """A session-level advisory lock held on a connection of its own, outside any transaction.

    For leadership between units of work (the outbox relay): the lock is held while no
    transaction is open, so the holder can wait on the network without keeping one open.
    If the connection is lost, Postgres releases the lock; `held()` notices on its next call,
    reconnects and tries again, so at most one holder acts at a time.
    """

    def __init__(self, engine: Engine, lock: AdvisoryLock) -> None:
        self._engine = engine
        self._lock = int(lock)
        self._connection: Connection | None = None

    def held(self) -> bool:
        """Whether this process holds the lock now, taking it if it is free."""
        try:
            if self._connection is None:
                connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                taken = connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self._lock}
                ).scalar()
                if not taken:
                    connection.close()
                    return False
                self._connection = connection
                return True
            # Still ours while the connection lives: a trivial round trip proves it does.
            self._connection.execute(text("SELECT 1"))
            return True
        except DBAPIError:
            self._drop()
            raise

    def release(self) -> None:
        """Give the lock up. The connection goes back to the pool, so unlock it first: a
        session lock outlives the transaction and would stay with the pooled connection."""
        connection = self._connection
        if connection is None:
            return
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._lock})
        except DBAPIError:
            self._drop()
            return
        self._connection = None
        connection.close()

    def _drop(self) -> None:
        """Discard the connection itself: its server session, and the lock, end with it."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(DBAPIError):
                connection.invalidate()
