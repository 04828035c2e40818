"""Database plumbing: engines and a unit of work that rolls back unless committed."""

from __future__ import annotations

import time
import weakref
from types import TracebackType
from typing import Self

from sqlalchemy import DateTime, Engine, MetaData, create_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import PoolProxiedConnection, QueuePool

from shared import metrics
from shared.settings import CommonSettings

DEFAULT_POOL = "default"


class MeasuredQueuePool(QueuePool):
    """A QueuePool that records how long each checkout waited (`duban_db_pool_wait_seconds`).

    SQLAlchemy's pool events fire once a connection is handed out, so they cannot see the
    wait (nor a wait that ends in a pool timeout); the checkout itself is timed instead.
    The pool's `logging_name` names it in the metrics (it survives `dispose()`).
    """

    def connect(self) -> PoolProxiedConnection:
        """A connection from the pool, the wait for it recorded."""
        started = time.perf_counter()
        try:
            return super().connect()
        finally:
            name = getattr(self, "logging_name", None) or DEFAULT_POOL
            metrics.DB_POOL_WAIT.labels(name).observe(time.perf_counter() - started)


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    max_overflow: int = 5,
    pool_timeout: float = 2.0,
    name: str = DEFAULT_POOL,
) -> Engine:
    """An engine with health-checked pooled connections, its pool measured under `name`.

    A request that finds every connection busy waits at most `pool_timeout` seconds, then
    `sqlalchemy.exc.TimeoutError` is raised (the edge answers 503 with Retry-After).
    """
    engine = create_engine(
        url,
        poolclass=MeasuredQueuePool,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        pool_logging_name=name,
    )
    ref = weakref.ref(engine)

    def in_use() -> float:
        alive = ref()
        pool = alive.pool if alive is not None else None
        return float(pool.checkedout()) if isinstance(pool, QueuePool) else 0.0

    metrics.DB_POOL_IN_USE.labels(name).set_function(in_use)
    metrics.DB_POOL_SIZE.labels(name).set(pool_size + max_overflow)
    return engine


def database_engine(settings: CommonSettings, *, name: str) -> Engine:
    """The service's request engine, its pool sized by the settings (`DUBAN_DB_POOL_*`)."""
    return make_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        name=name,
    )


def workers_engine(settings: CommonSettings, *, name: str) -> Engine:
    """The engine of the service's background workers (`DUBAN_DB_WORKERS_POOL_*`)."""
    return make_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_workers_pool_size,
        max_overflow=settings.db_workers_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        name=f"{name}-workers",
    )


def engine_of(session_factory: sessionmaker[Session]) -> Engine:
    """The engine a session factory binds its sessions to."""
    bind = session_factory.kw.get("bind")
    if not isinstance(bind, Engine):
        raise TypeError("the session factory is not bound to an engine")
    return bind


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


# How every service's tables name their constraints and indexes (Alembic's names match).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The type of every timestamp column: timestamptz, so values come back tz-aware.
Timestamp = DateTime(timezone=True)


def schema_metadata(schema: str) -> MetaData:
    """The metadata of one service's tables: its own schema, the shared naming convention."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


class UnitOfWork:
    """One transaction: `with uow: ...; uow.commit()`; anything not committed rolls back."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._factory = session_factory
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        """The open session; only valid inside the `with` block."""
        if self._session is None:
            raise RuntimeError(f"{type(self).__name__} used outside its with-block")
        return self._session

    def __enter__(self) -> Self:
        self._session = self._factory()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._session is not None
        self._session.rollback()
        self._session.close()
        self._session = None

    def commit(self) -> None:
        """Make the work durable."""
        self.session.commit()
