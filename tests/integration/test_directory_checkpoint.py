"""A directory follower restarting from its checkpoint, on a real broker.

Tansu (the test broker) does not compact, so a follower without a checkpoint reads the
whole history; with a usable checkpoint it reads only what came after, and with an unsafe
or unreadable one it reads everything again. Either way it ends with exactly the last
value per key: a revoked key is refused, a live one accepted.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session, sessionmaker

from devtools.servers import Broker, start_broker
from services.intake.api import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.notifier.settings import NotifierSettings
from services.notifier.workers import NotifierWorkers
from shared import directory_checkpoint, topics
from shared.apikeys import IssuedKey, issue_key
from shared.clock import SHANGHAI, FixedClock
from shared.db import make_engine, make_session_factory
from shared.directory import Directory, DirectoryFollower, InvalidKey, key_entity, task_entity
from shared.events import ApiKeyPublished, TaskAssignmentPublished, encode
from shared.kafka import ensure_topics
from shared.settings import CommonSettings

from .stack import wait_until

NOW = dt.datetime(2022, 6, 1, 9, 0, tzinfo=SHANGHAI)
UNITS = ("市发展改革委", "市工业和信息化局", "市统计局")
TASKS = ("T2022-001", "T2022-002")
Record = tuple[str, bytes | None]


def key_published(issued: IssuedKey, unit: str) -> Record:
    event = ApiKeyPublished(
        event_id=uuid.uuid4(),
        occurred_at=NOW,
        key_id=issued.key_id,
        key_hash=issued.key_hash,
        role="unit",
        unit=unit,
        expires_at=None,
        revoked=False,
    )
    return key_entity(issued.key_id), encode(event)


def revoked(issued: IssuedKey) -> Record:
    """What the tracker publishes for a revoked key: a tombstone."""
    return key_entity(issued.key_id), None


def task_published(code: str) -> Record:
    event = TaskAssignmentPublished(
        event_id=uuid.uuid4(),
        occurred_at=NOW,
        task_code=code,
        lead_units=list(UNITS),
        co_units=[],
        accepting_reports=True,
    )
    return task_entity(code), encode(event)


def publish(broker: Broker, records: list[Record]) -> int:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    try:
        for entity, value in records:
            producer.send(topics.DIRECTORY, key=entity.encode(), value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()
    return len(records)


def messages_on_topic(broker: Broker) -> int:
    """How many records the directory topic holds, counted by reading it."""
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    try:
        assigned = [
            TopicPartition(topics.DIRECTORY, p)
            for p in consumer.partitions_for_topic(topics.DIRECTORY) or set()
        ]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        count = 0
        while batch := consumer.poll(timeout_ms=1000):
            count += sum(len(messages) for messages in batch.values())
        return count
    finally:
        consumer.close()


def settings_for(broker: Broker, cache: Path) -> CommonSettings:
    return CommonSettings(kafka_bootstrap_servers=broker.bootstrap, directory_cache_dir=cache)


@contextmanager
def following(settings: CommonSettings) -> Iterator[DirectoryFollower]:
    """A follower (a service start), caught up with the topic; stopped cleanly after."""
    follower = DirectoryFollower(settings, Directory())
    follower.start()
    try:
        wait_until(follower.caught_up.is_set, timeout=60, what="the directory to load")
        yield follower
    finally:
        follower.stop()


class Keys:
    """The units' current keys, and every key retired by rotation or revocation."""

    def __init__(self) -> None:
        self.live = {unit: issue_key("unit") for unit in UNITS}
        self.retired: list[IssuedKey] = []

    def initial(self) -> list[Record]:
        return [
            *(task_published(code) for code in TASKS),
            *(key_published(key, unit) for unit, key in self.live.items()),
        ]

    def rotate(self, unit: str) -> list[Record]:
        old, new = self.live[unit], issue_key("unit")
        self.live[unit] = new
        self.retired.append(old)
        return [key_published(new, unit), revoked(old)]

    def revoke(self, unit: str) -> list[Record]:
        old = self.live.pop(unit)
        self.retired.append(old)
        return [revoked(old)]

    def rotations(self, rounds: int) -> list[Record]:
        units = list(self.live)
        return [record for n in range(rounds) for record in self.rotate(units[n % len(units)])]

    def assert_state_of(self, directory: Directory) -> None:
        for unit, key in self.live.items():
            assert directory.authenticate(key.plaintext, now=NOW).unit == unit
        for key in self.retired:
            with pytest.raises(InvalidKey, match="吊销"):
                directory.authenticate(key.plaintext, now=NOW)
        assert len(directory.keys) == len(self.live)
        assert set(directory.tasks) == set(TASKS)


def checkpointed(broker: Broker, cache: Path, keys: Keys) -> directory_checkpoint.Checkpoint:
    """Publish a history (rotations and a revocation) and let a follower checkpoint it."""
    ensure_topics(CommonSettings(kafka_bootstrap_servers=broker.bootstrap), [topics.DIRECTORY])
    publish(broker, keys.initial())
    with following(settings_for(broker, cache)) as running:
        # Published while it runs, as the tracker does.
        publish(broker, [*keys.rotations(150), *keys.revoke(UNITS[0])])
        wait_until(
            lambda: (
                len(running.directory.keys) == len(keys.live)
                and all(running.directory.key(k.key_hash) for k in keys.live.values())
            ),
            what="the running follower to see the rotations",
        )
    saved = directory_checkpoint.load(cache)
    assert saved is not None
    return saved


def test_a_restart_with_a_checkpoint_reads_only_the_tail_and_has_exactly_the_state(
    broker: Broker, tmp_path: Path
) -> None:
    keys = Keys()
    cache = tmp_path / "cache"
    saved = checkpointed(broker, cache, keys)
    assert len(saved.entries) == len(keys.live) + len(TASKS)
    # While it was down: one more rotation, and a key revoked for good.
    tail = publish(broker, [*keys.rotate(UNITS[1]), *keys.revoke(UNITS[2])])
    total = messages_on_topic(broker)

    with following(settings_for(broker, cache)) as restarted:
        assert restarted.checkpoint_outcome == "restored"
        assert restarted.messages_read == tail < total
        keys.assert_state_of(restarted.directory)
        assert list(keys.live) == [UNITS[1]]


@pytest.mark.parametrize(("share", "restored"), [(0.8, True), (1.0, False)])
def test_a_checkpoint_as_old_as_the_tombstone_retention_is_ignored(
    broker: Broker, tmp_path: Path, share: float, restored: bool
) -> None:
    keys = Keys()
    cache = tmp_path / "cache"
    saved = checkpointed(broker, cache, keys)
    age = topics.DIRECTORY_TOMBSTONE_RETENTION * share
    directory_checkpoint.save(
        cache,
        saved.model_copy(
            update={"confirmed_at": saved.confirmed_at - age, "written_at": saved.written_at - age}
        ),
    )
    publish(broker, keys.revoke(UNITS[1]))
    total = messages_on_topic(broker)

    with following(settings_for(broker, cache)) as restarted:
        if restored:
            assert restarted.checkpoint_outcome == "restored"
            assert restarted.messages_read == 1
        else:
            assert (restarted.checkpoint_outcome or "").startswith("ignored: checkpoint ")
            assert "tombstones are only kept" in (restarted.checkpoint_outcome or "")
            assert restarted.messages_read == total
        keys.assert_state_of(restarted.directory)


@pytest.mark.parametrize("republished", [2, 400], ids=["fewer-messages", "more-messages"])
def test_a_checkpoint_of_another_topic_is_ignored_and_the_state_replayed(
    broker: Broker, tmp_path: Path, republished: int
) -> None:
    """The broker lost the topic (a new broker) and the tracker republished its directory."""
    keys = Keys()
    cache = tmp_path / "cache"
    checkpointed(broker, cache, keys)
    # Revoked on the old broker after the checkpoint; the new topic never names the key.
    keys.revoke(UNITS[1])
    fresh = start_broker(log_path=tmp_path / "tansu-2.log")
    try:
        ensure_topics(CommonSettings(kafka_bootstrap_servers=fresh.bootstrap), [topics.DIRECTORY])
        # A fresh topic may hold fewer messages than the checkpoint covers, or more.
        publish(fresh, [*keys.rotations(republished), *keys.initial()])
        with following(settings_for(fresh, cache)) as restarted:
            keys.assert_state_of(restarted.directory)
            assert (restarted.checkpoint_outcome or "").startswith("ignored: ")
            assert restarted.messages_read == messages_on_topic(fresh)
    finally:
        fresh.stop()


def test_a_checkpoint_beyond_the_end_of_the_topic_is_ignored(
    broker: Broker, tmp_path: Path
) -> None:
    keys = Keys()
    cache = tmp_path / "cache"
    saved = checkpointed(broker, cache, keys)
    beyond = {
        p: mark.model_copy(update={"offset": mark.offset + 1000, "end": mark.end + 1000})
        for p, mark in saved.partitions.items()
    }
    directory_checkpoint.save(cache, saved.model_copy(update={"partitions": beyond}))
    publish(broker, keys.revoke(UNITS[1]))

    with following(settings_for(broker, cache)) as restarted:
        assert "lies beyond the end" in (restarted.checkpoint_outcome or "")
        assert restarted.messages_read == messages_on_topic(broker)
        keys.assert_state_of(restarted.directory)


@pytest.mark.parametrize(
    "content",
    [b"\x00\xff not json", b'{"format": 1, "topic": "tracker.dir', b'{"format": 2}', b"[]"],
    ids=["garbage", "truncated", "other-format", "not-an-object"],
)
def test_a_corrupt_checkpoint_is_ignored_and_the_state_replayed(
    broker: Broker, tmp_path: Path, content: bytes
) -> None:
    keys = Keys()
    cache = tmp_path / "cache"
    checkpointed(broker, cache, keys)
    directory_checkpoint.path_in(cache).write_bytes(content)
    publish(broker, keys.revoke(UNITS[1]))

    with following(settings_for(broker, cache)) as restarted:
        assert (restarted.checkpoint_outcome or "").startswith("unreadable: ")
        assert restarted.messages_read == messages_on_topic(broker)
        keys.assert_state_of(restarted.directory)
    # Stopped cleanly: a good checkpoint replaces the corrupt one.
    assert directory_checkpoint.load(cache) is not None


def test_intake_is_not_ready_once_its_directory_follower_died(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_topics(CommonSettings(kafka_bootstrap_servers=broker.bootstrap), [topics.DIRECTORY])
    keys = Keys()
    publish(broker, keys.initial())

    def running() -> float | None:
        return REGISTRY.get_sample_value("duban_consumer_running", {"topic": topics.DIRECTORY})

    settings = IntakeSettings(kafka_bootstrap_servers=broker.bootstrap)
    with TestClient(create_intake(settings, FixedClock(NOW))) as intake:
        wait_until(lambda: intake.get("/readyz").status_code == 200, what="intake ready")
        assert running() == 1

        def bug(_entry: object) -> None:
            raise RuntimeError("a bug in applying an entry")

        # The next entry it applies kills the thread with an error that is not Kafka's.
        monkeypatch.setattr(intake.app.state.directory, "apply", bug)  # type: ignore[attr-defined]
        publish(broker, keys.rotate(UNITS[0]))
        wait_until(lambda: intake.get("/readyz").status_code == 503, what="intake not ready")
        check = intake.get("/readyz").json()["checks"]["directory"]
        assert check.startswith("stopped: ") and "a bug in applying an entry" in check
        assert running() == 0


def test_the_notifier_is_not_ready_once_its_directory_follower_died(
    broker: Broker, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_topics(CommonSettings(kafka_bootstrap_servers=broker.bootstrap), [topics.DIRECTORY])
    keys = Keys()
    publish(broker, keys.initial())
    factory: sessionmaker[Session] = make_session_factory(make_engine(database_url))
    settings = NotifierSettings(database_url=database_url, kafka_bootstrap_servers=broker.bootstrap)
    workers = NotifierWorkers(settings, factory, FixedClock(NOW))
    workers.follower.start()
    try:
        wait_until(lambda: workers.status()["directory"] == "ok", what="the directory loaded")

        def bug(_entity: str) -> None:
            raise RuntimeError("a bug in applying a tombstone")

        monkeypatch.setattr(workers.directory, "delete", bug)
        publish(broker, keys.revoke(UNITS[0]))
        wait_until(
            lambda: workers.status()["directory"].startswith("stopped: "),
            what="the notifier's directory check to fail",
        )
        assert "a bug in applying a tombstone" in workers.status()["directory"]
    finally:
        workers.follower.stop()
