"""The use cases' SQL adapters on Postgres: locks read as of the lock, ON CONFLICT, SKIP LOCKED."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from services.tracker.adapters.sql import SqlUnitOfWork
from services.tracker.importer import import_document
from services.tracker.keys import create_key
from services.tracker.orm import ApiKey, OutboxMessage, ProcessedEvent, Report, Task, Unit
from shared import topics
from shared.db import UnitOfWork, make_engine, make_session_factory
from shared.events import TaskAssignmentPublished, new_event_id
from shared.kafka import MessagePosition

from .stack import demo_document

pytestmark = pytest.mark.integration

NOW = dt.datetime(2022, 5, 20, 2, 0, tzinfo=dt.UTC)
CODES = ("T2022-001", "T2022-002", "T2022-003")


@pytest.fixture
def factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    with UnitOfWork(factory) as uow:
        import_document(uow.session, demo_document(), now=NOW)
        uow.commit()
    yield factory
    engine.dispose()


def locked_elsewhere(factory: sessionmaker[Session], code: str) -> bool:
    """Whether another transaction holds the task's row lock (asked without waiting)."""
    with UnitOfWork(factory) as uow:
        try:
            uow.session.execute(
                text("SELECT 1 FROM tracker.tasks WHERE code = :c FOR UPDATE NOWAIT"), {"c": code}
            )
        except OperationalError as exc:
            assert "could not obtain lock" in str(exc)
            return True
        return False


def test_a_task_locked_for_a_decision_is_read_as_of_the_lock(
    factory: sessionmaker[Session],
) -> None:
    with UnitOfWork(factory) as held:
        stale = held.session.execute(select(Task).where(Task.code == CODES[0])).scalar_one()
        assert stale.status == "not_started"
        held.session.commit()  # the copy stays in the session (expire_on_commit=False)
        with UnitOfWork(factory) as other:
            other.session.execute(
                update(Task).where(Task.code == CODES[0]).values(status="completion_requested")
            )
            other.commit()

        locked = SqlUnitOfWork(held.session).tasks.get_for_update(CODES[0])

        assert locked is stale
        assert locked.status == "completion_requested"
        assert locked_elsewhere(factory, CODES[0])
        assert not locked_elsewhere(factory, CODES[1])
    assert not locked_elsewhere(factory, CODES[0])


def test_an_unknown_task_is_none(factory: sessionmaker[Session]) -> None:
    with UnitOfWork(factory) as uow:
        assert SqlUnitOfWork(uow.session).tasks.get_for_update("T2099-404") is None


def test_the_scan_skips_tasks_another_transaction_holds(factory: sessionmaker[Session]) -> None:
    with UnitOfWork(factory) as uow:
        for offset, code in enumerate(CODES):
            uow.session.execute(
                update(Task)
                .where(Task.code == code)
                .values(next_evaluation_at=NOW - dt.timedelta(minutes=10 - offset))
            )
        uow.commit()
    with UnitOfWork(factory) as replica_a, UnitOfWork(factory) as replica_b:
        first = SqlUnitOfWork(replica_a.session).tasks.get_for_update(CODES[0])
        assert first is not None

        batch = SqlUnitOfWork(replica_b.session).tasks.due_for_evaluation(NOW, limit=10)
        limited = SqlUnitOfWork(replica_b.session).tasks.due_for_evaluation(NOW, limit=1)
        not_yet = SqlUnitOfWork(replica_b.session).tasks.due_for_evaluation(
            NOW - dt.timedelta(minutes=9, seconds=30), limit=10
        )

        assert [t.code for t in batch] == list(CODES[1:])
        assert [t.code for t in limited] == [CODES[1]]
        assert not_yet == []
        assert locked_elsewhere(factory, CODES[2])


def test_an_event_is_marked_processed_once(factory: sessionmaker[Session]) -> None:
    event_id = uuid.uuid4()
    first, again = MessagePosition(topics.PROGRESS_REPORTS, 0, 5), MessagePosition("x", 1, 9)
    with UnitOfWork(factory) as uow:
        processed = SqlUnitOfWork(uow.session).processed
        assert processed.mark(event_id, first) is True
        assert processed.mark(event_id, again) is False
        uow.commit()
    with UnitOfWork(factory) as uow:
        assert SqlUnitOfWork(uow.session).processed.mark(event_id, again) is False
        row = uow.session.execute(select(ProcessedEvent)).scalar_one()
        assert (row.topic, row.partition, row.offset) == (topics.PROGRESS_REPORTS, 0, 5)


def test_the_latest_lead_report_skips_co_unit_and_returned_reports(
    factory: sessionmaker[Session],
) -> None:
    with UnitOfWork(factory) as uow:
        task = uow.session.execute(select(Task).where(Task.code == CODES[0])).scalar_one()
        lead, co = (a.unit_id for a in task.assignments)
        reports = SqlUnitOfWork(uow.session).reports
        assert reports.latest_lead(task.id) is None

        def report(unit_id: int, role: str, hours: int, returned: bool = False) -> Report:
            made = Report(
                event_id=uuid.uuid4(),
                task_id=task.id,
                unit_id=unit_id,
                role=role,
                percent=10,
                summary="进展",
                payload={},
                submitted_at=NOW + dt.timedelta(hours=hours),
                returned_at=NOW if returned else None,
            )
            reports.add(made)
            return made

        standing = report(lead, "lead", 1)
        report(lead, "lead", 0)
        report(co, "co", 3)
        report(lead, "lead", 2, returned=True)
        uow.session.flush()

        assert reports.latest_lead(task.id) is standing


def test_units_keys_leaders_and_the_outbox(factory: sessionmaker[Session]) -> None:
    with UnitOfWork(factory) as uow:
        key_id = create_key(
            uow.session, role="unit", unit_name="市统计局", label="", expires_at=None, now=NOW
        ).key_id
        uow.commit()
    with UnitOfWork(factory) as held:
        stale = held.session.execute(select(ApiKey).where(ApiKey.key_id == key_id)).scalar_one()
        held.session.commit()
        with UnitOfWork(factory) as other:
            other.session.execute(
                update(ApiKey).where(ApiKey.key_id == key_id).values(revoked_at=NOW)
            )
            other.commit()
        store = SqlUnitOfWork(held.session)
        assert store.keys.get_for_update(key_id) is stale
        assert stale.revoked_at == NOW
        assert store.keys.get_for_update("nosuchkey") is None

        unit = store.units.by_name("市统计局")
        assert isinstance(unit, Unit) and unit.name == "市统计局"
        assert store.units.by_name("无此单位") is None
        assert store.tasks.leader_known("王卫东") is True
        assert store.tasks.leader_known("王") is False

        before = held.session.execute(select(func.count()).select_from(OutboxMessage)).scalar()
        entry = TaskAssignmentPublished(
            event_id=new_event_id(),
            occurred_at=NOW,
            task_code=CODES[0],
            lead_units=[],
            co_units=[],
            accepting_reports=True,
        )
        store.outbox.add(topic=topics.DIRECTORY, key="task:x", event=entry)
        store.outbox.add(topic=topics.DIRECTORY, key="task:y", event=None)
        store.flush()
        rows = held.session.execute(
            select(OutboxMessage.key, OutboxMessage.payload)
            .order_by(OutboxMessage.id.desc())
            .limit(2)
        ).all()
        assert held.session.execute(select(func.count()).select_from(OutboxMessage)).scalar() == (
            (before or 0) + 2
        )
        assert [(k, p is None) for k, p in rows] == [("task:y", True), ("task:x", False)]
