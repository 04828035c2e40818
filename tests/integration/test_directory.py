"""The directory topic as a compacted changelog, on a real broker and a real database.

Tansu (the test broker) keeps topic settings but does not compact its memory storage, so
these restarts read the whole history: the follower must still end with the last value per
key, tombstones applied.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from sqlalchemy import text, update
from sqlalchemy.orm import Session, sessionmaker

from devtools.servers import Broker
from services.tracker.importer import import_document
from services.tracker.keys import create_key, revoke_key
from services.tracker.orm import ApiKey
from services.tracker.outbox import drain
from services.tracker.settings import TrackerSettings
from services.tracker.workers import TrackerWorkers, sync_directory
from shared import topics
from shared.apikeys import issue_key
from shared.clock import SHANGHAI, FixedClock
from shared.db import UnitOfWork, make_engine, make_session_factory
from shared.directory import Directory, DirectoryFollower, InvalidKey, task_entity
from shared.events import ApiKeyPublished, TaskAssignmentPublished, encode
from shared.kafka import ensure_topics

from .stack import FAST, demo_document, wait_until

NOW = dt.datetime(2022, 6, 1, 9, 0, tzinfo=SHANGHAI)
UNITS = ("市发展改革委", "市工业和信息化局", "市统计局")


def settings_for(database_url: str, broker: Broker) -> TrackerSettings:
    return TrackerSettings(
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap,
        outbox_poll_seconds=0.05,
        scan_interval_seconds=3600,
        consumer_session_timeout_ms=FAST["consumer_session_timeout_ms"],
        consumer_heartbeat_interval_ms=FAST["consumer_heartbeat_interval_ms"],
    )


@contextmanager
def following(settings: TrackerSettings) -> Iterator[Directory]:
    """A fresh follower (an intake start), caught up with the topic."""
    directory = Directory()
    follower = DirectoryFollower(settings, directory)
    follower.start()
    try:
        wait_until(follower.caught_up.is_set, timeout=30, what="the directory to load")
        yield directory
    finally:
        follower.stop()


def relay_all(factory: sessionmaker[Session], broker: Broker) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    try:
        drain(factory, producer, now=NOW)
    finally:
        producer.close()


def issue(session: Session, unit: str) -> tuple[str, str]:
    issued = create_key(
        session, role="unit", unit_name=unit, label="rotation", expires_at=None, now=NOW
    )
    return issued.key_id, issued.plaintext


def test_a_restarted_follower_reads_the_state_after_rotations_and_revocations(
    database_url: str, broker: Broker
) -> None:
    settings = settings_for(database_url, broker)
    ensure_topics(settings, topics.ALL)
    factory = make_session_factory(make_engine(database_url))
    with UnitOfWork(factory) as uow:
        import_document(uow.session, demo_document(), now=NOW)
        uow.session.flush()
        live = {unit: issue(uow.session, unit) for unit in UNITS}
        uow.commit()
    relay_all(factory, broker)
    with following(settings) as first:
        assert first.authenticate(live["市统计局"][1], now=NOW).unit == "市统计局"

    # Rotate every unit's key many times (the new key issued, the old one revoked), in
    # transactions the relay publishes in large batches; one key is revoked for good.
    retired: list[str] = []
    for _ in range(40):
        with UnitOfWork(factory) as uow:
            for unit in UNITS:
                old_id, old_token = live[unit]
                live[unit] = issue(uow.session, unit)
                revoke_key(uow.session, key_id=old_id, now=NOW)
                retired.append(old_token)
            uow.commit()
    with UnitOfWork(factory) as uow:
        revoke_key(uow.session, key_id=live["市统计局"][0], now=NOW)
        uow.commit()
    retired.append(live.pop("市统计局")[1])
    relay_all(factory, broker)

    with following(settings) as restarted:
        for unit, (_key_id, token) in live.items():
            assert restarted.authenticate(token, now=NOW).unit == unit
        for token in retired:
            with pytest.raises(InvalidKey, match="吊销"):
                restarted.authenticate(token, now=NOW)
        # Only the live keys are held, not the 240 rotations' history.
        assert len(restarted.keys) == len(live)
        assert {t for t in restarted.tasks} == {"T2022-001", "T2022-002", "T2022-003"}


def test_the_tracker_publishes_only_what_the_topic_lacks_and_deletes_what_is_gone(
    database_url: str, broker: Broker
) -> None:
    settings = settings_for(database_url, broker)
    ensure_topics(settings, topics.ALL)
    factory = make_session_factory(make_engine(database_url))
    with UnitOfWork(factory) as uow:
        import_document(uow.session, demo_document(), now=NOW)
        uow.session.flush()
        kept_id, kept = issue(uow.session, "市统计局")
        lost_id, lost = issue(uow.session, "市发展改革委")
        uow.commit()
    relay_all(factory, broker)
    # On the topic but not in the database: a key and a task the tracker no longer has.
    stray, producer = issue_key("unit"), KafkaProducer(bootstrap_servers=broker.bootstrap)
    producer.send(
        topics.DIRECTORY,
        key=f"key:{stray.key_id}".encode(),
        value=encode(
            ApiKeyPublished(
                event_id=uuid.uuid4(),
                occurred_at=NOW,
                key_id=stray.key_id,
                key_hash=stray.key_hash,
                role="unit",
                unit="市统计局",
                expires_at=None,
                revoked=False,
            )
        ),
    )
    producer.send(
        topics.DIRECTORY,
        key=task_entity("T2019-009").encode(),
        value=encode(
            TaskAssignmentPublished(
                event_id=uuid.uuid4(),
                occurred_at=NOW,
                task_code="T2019-009",
                lead_units=["市统计局"],
                co_units=[],
                accepting_reports=True,
            )
        ),
    )
    producer.flush()
    producer.close()
    # A revocation whose publication was lost (say, a database restored from a backup).
    with UnitOfWork(factory) as uow:
        uow.session.execute(update(ApiKey).where(ApiKey.key_id == lost_id).values(revoked_at=NOW))
        uow.commit()

    with following(settings) as published:
        assert published.task("T2019-009") is not None
        assert published.authenticate(lost, now=NOW).key_id == lost_id
        # The lost revocation and the two strays: three tombstones, nothing else.
        assert sync_directory(factory, published, now=NOW) == 3
    relay_all(factory, broker)
    with following(settings) as published:
        for token in (lost, stray.plaintext):
            with pytest.raises(InvalidKey):
                published.authenticate(token, now=NOW)
        assert published.task("T2019-009") is None
        assert published.authenticate(kept, now=NOW).key_id == kept_id
        assert set(published.tasks) == {"T2022-001", "T2022-002", "T2022-003"}
        # In step with the database: nothing to publish.
        assert sync_directory(factory, published, now=NOW) == 0


def test_a_starting_tracker_refills_a_directory_topic_that_lost_its_messages(
    database_url: str, broker: Broker
) -> None:
    settings = settings_for(database_url, broker)
    factory = make_session_factory(make_engine(database_url))
    with UnitOfWork(factory) as uow:
        import_document(uow.session, demo_document(), now=NOW)
        uow.session.flush()
        key_id, token = issue(uow.session, "市统计局")
        # Relayed long ago to a broker that has since lost everything.
        uow.session.execute(text("UPDATE tracker.outbox SET published_at = now()"))
        uow.commit()
    workers = TrackerWorkers(settings, factory, FixedClock(NOW))
    workers.start()
    try:
        directory = Directory()
        follower = DirectoryFollower(settings, directory)
        follower.start()
        try:
            wait_until(
                lambda: len(directory.keys) == 1 and len(directory.tasks) == 3,
                timeout=30,
                what="the tracker to republish its directory",
            )
            assert directory.authenticate(token, now=NOW).key_id == key_id
        finally:
            follower.stop()
    finally:
        workers.stop()


def test_the_directory_topic_is_created_compacted_and_an_older_one_is_altered(
    broker: Broker,
) -> None:
    settings = TrackerSettings(kafka_bootstrap_servers=broker.bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        # A directory topic from before compaction, created with the broker defaults.
        admin.create_topics([NewTopic(topics.DIRECTORY, 1, 1)])
        ensure_topics(settings, topics.ALL)
        names = [*topics.ALL, topics.dlq(topics.DIRECTORY)]
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names],
            config_filter="all",
        )["topic"]
    finally:
        admin.close()
    directory = {key: entry["value"] for key, entry in described[topics.DIRECTORY].items()}
    assert directory.items() >= topics.DIRECTORY_CONFIG.items()
    assert directory["cleanup.policy"] == "compact"
    for name in names:
        if name != topics.DIRECTORY:
            policy = described[name].get("cleanup.policy", {}).get("value", "delete")
            assert policy == "delete", name
