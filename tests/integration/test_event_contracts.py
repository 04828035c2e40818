"""Rolling upgrades: every consumer reads the example events grown by fields it does not know
(as a producer one release ahead would send them), applies them, and dead-letters nothing.

The tracker and notifier handlers run on the real database they write to; intake's directory
follower reads the real directory topic on a real broker.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pytest
from kafka import KafkaProducer
from sqlalchemy import select

from devtools.servers import Broker
from services.notifier.adapters.sql import SqlUnitOfWork, unit_of_work_factory
from services.notifier.consumer import make_task_event_handler
from services.notifier.orm import TaskConditionRow
from services.notifier.usecases.folding import current_conditions
from services.tracker.consumer import make_report_handler
from services.tracker.importer import import_document
from services.tracker.orm import Report
from shared import topics
from shared.clock import SHANGHAI, FixedClock
from shared.db import UnitOfWork, make_engine, make_session_factory
from shared.directory import Directory, DirectoryFollower
from shared.events import EXAMPLES_DIR
from shared.kafka import Outcome, PoisonMessage, ensure_topics
from shared.settings import CommonSettings
from tests.event_contract import UNKNOWN_FIELD, grown_example

from .stack import demo_document, wait_until

pytestmark = pytest.mark.integration

NOW = dt.datetime(2022, 7, 1, 10, 0, tzinfo=SHANGHAI)


@dataclass(frozen=True)
class Record:
    """A consumed record, as the consumer loop hands it to a handler."""

    topic: str
    value: bytes
    partition: int = 0
    offset: int = 0
    key: bytes | None = None


def test_the_tracker_applies_a_report_with_fields_it_does_not_know(database_url: str) -> None:
    factory = make_session_factory(make_engine(database_url))
    with UnitOfWork(factory) as uow:
        import_document(uow.session, demo_document(), now=NOW)  # T2022-001, lead 市发展改革委
        uow.commit()
    handle = make_report_handler(factory, FixedClock(NOW))
    raw = grown_example("progress_report.submitted.v1.json")

    assert handle(Record(topics.PROGRESS_REPORTS, raw)) is Outcome.APPLIED
    assert handle(Record(topics.PROGRESS_REPORTS, raw, offset=1)) is Outcome.DUPLICATE

    with UnitOfWork(factory) as uow:
        percent, role, payload = uow.session.execute(
            select(Report.percent, Report.role, Report.payload)
        ).one()
    assert (percent, role) == (40, "lead")
    assert UNKNOWN_FIELD not in json.dumps(payload)


def test_the_notifier_folds_task_events_with_fields_it_does_not_know(database_url: str) -> None:
    factory = make_session_factory(make_engine(database_url))
    handle = make_task_event_handler(unit_of_work_factory(factory))
    for offset, name in enumerate(
        ("task.action_recorded.v1.json", "task.condition_changed.v1.json")
    ):
        outcome = handle(Record(topics.TASK_EVENTS, grown_example(name), offset=offset))
        assert outcome is Outcome.APPLIED, name

    with SqlUnitOfWork(factory) as uow:
        code, event = uow.session.execute(
            select(TaskConditionRow.task_code, TaskConditionRow.event)
        ).one()
        conditions, unreadable = current_conditions(uow.conditions, now=NOW)
    assert UNKNOWN_FIELD not in json.dumps(event)
    # What the notifier stored, it reads back for escalation.
    assert unreadable == []
    assert [(c.task_id, c.light) for c in conditions] == [(code, "red")]


def test_consumers_dead_letter_what_they_cannot_read_with_the_reason(database_url: str) -> None:
    factory = make_session_factory(make_engine(database_url))
    data = json.loads(grown_example("task.condition_changed.v1.json"))
    handle = make_task_event_handler(unit_of_work_factory(factory))
    with pytest.raises(PoisonMessage, match="unsupported schema_version 2"):
        handle(Record(topics.TASK_EVENTS, json.dumps({**data, "schema_version": 2}).encode()))
    without_light = {key: value for key, value in data.items() if key != "light"}
    with pytest.raises(PoisonMessage, match="light"):
        handle(Record(topics.TASK_EVENTS, json.dumps(without_light).encode()))
    with UnitOfWork(factory) as uow:
        assert uow.session.execute(select(TaskConditionRow)).first() is None


def test_the_directory_follower_applies_entries_with_fields_it_does_not_know(
    broker: Broker,
) -> None:
    settings = CommonSettings(kafka_bootstrap_servers=broker.bootstrap)
    ensure_topics(settings, [topics.DIRECTORY])
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    try:
        for name in ("directory.api_key.v1.json", "directory.task_assignment.v1.json"):
            producer.send(topics.DIRECTORY, key=name.encode(), value=grown_example(name))
        producer.flush(timeout=10)
    finally:
        producer.close()
    key = json.loads((EXAMPLES_DIR / "directory.api_key.v1.json").read_bytes())
    task = json.loads((EXAMPLES_DIR / "directory.task_assignment.v1.json").read_bytes())

    directory = Directory()
    follower = DirectoryFollower(settings, directory)
    follower.start()
    try:
        wait_until(follower.caught_up.is_set, timeout=30, what="the directory read to its end")
    finally:
        follower.stop()
    # Both entries applied: none skipped as undecodable.
    assert directory.key(key["key_hash"]) is not None
    assigned = directory.task(task["task_code"])
    assert assigned is not None and assigned.lead_units == task["lead_units"]
