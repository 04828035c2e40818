"""Read model of the tracker's directory: key hashes and task assignments.

`tracker.directory` is a compacted changelog keyed by entity (`key:<key_id>`,
`task:<code>`): the state is the last value of each key, and a null value (tombstone)
deletes it. The follower reads it from the start on every start and then keeps following,
so intake needs no database of its own and keeps accepting reports while the tracker is
down. While loading it keeps only the latest raw value per key and decodes the survivors
once, so an uncompacted history (a broker that does not compact, or the not yet cleaned
head of the log) costs little more than reading it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import structlog
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from shared import metrics, topics
from shared.apikeys import hash_key, parse_key
from shared.events import (
    ApiKeyPublished,
    TaskAssignmentPublished,
    UnsupportedEvent,
    decode_directory_event,
)
from shared.settings import CommonSettings

log = structlog.get_logger(__name__)

KEY_PREFIX: Final = "key:"
TASK_PREFIX: Final = "task:"

DirectoryEntry = ApiKeyPublished | TaskAssignmentPublished


def key_entity(key_id: str) -> str:
    """The directory message key of an API key."""
    return f"{KEY_PREFIX}{key_id}"


def task_entity(task_code: str) -> str:
    """The directory message key of a task assignment."""
    return f"{TASK_PREFIX}{task_code}"


def entity_of(entry: DirectoryEntry) -> str:
    """The directory message key an entry is published under."""
    if isinstance(entry, ApiKeyPublished):
        return key_entity(entry.key_id)
    return task_entity(entry.task_code)


class InvalidKey(Exception):
    """A presented API key is malformed, unknown, revoked or expired."""


@dataclass
class Directory:
    """Latest known keys (by hash) and task assignments (by code)."""

    keys: dict[str, ApiKeyPublished] = field(default_factory=dict)
    tasks: dict[str, TaskAssignmentPublished] = field(default_factory=dict)
    _key_ids: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def apply(self, event: DirectoryEntry) -> None:
        """Fold one directory event into the model (a revoked key is deleted)."""
        with self._lock:
            self._put(event)

    def delete(self, entity: str) -> None:
        """Apply a tombstone: forget the key or task assignment published under `entity`."""
        with self._lock:
            self._delete(entity)

    def replace(self, entries: Iterable[DirectoryEntry]) -> None:
        """Swap in a freshly loaded state in one step."""
        fresh = Directory()
        for entry in entries:
            fresh._put(entry)
        with self._lock:
            self.keys, self.tasks, self._key_ids = fresh.keys, fresh.tasks, fresh._key_ids

    def entries(self) -> dict[str, DirectoryEntry]:
        """Every live entry by its message key: what a compacted topic holds."""
        with self._lock:
            found: dict[str, DirectoryEntry] = {key_entity(k.key_id): k for k in self.keys.values()}
            found.update({task_entity(code): t for code, t in self.tasks.items()})
            return found

    def _put(self, event: DirectoryEntry) -> None:
        if isinstance(event, TaskAssignmentPublished):
            self.tasks[event.task_code] = event
            return
        self._delete(key_entity(event.key_id))
        if not event.revoked:  # older histories carry revocations as values
            self._key_ids[event.key_id] = event.key_hash
            self.keys[event.key_hash] = event

    def _delete(self, entity: str) -> None:
        if entity.startswith(KEY_PREFIX):
            old_hash = self._key_ids.pop(entity.removeprefix(KEY_PREFIX), None)
            if old_hash is not None:
                self.keys.pop(old_hash, None)
        elif entity.startswith(TASK_PREFIX):
            self.tasks.pop(entity.removeprefix(TASK_PREFIX), None)

    def key(self, key_hash: str) -> ApiKeyPublished | None:
        """The key with this hash, if known."""
        with self._lock:
            return self.keys.get(key_hash)

    def authenticate(self, token: str, *, now: dt.datetime) -> ApiKeyPublished:
        """The live key behind a presented token; raises `InvalidKey` with a reason."""
        key = self.key(hash_key(token)) if parse_key(token) else None
        if key is None or key.revoked:
            raise InvalidKey("API 密钥无效或已吊销 (unknown or revoked API key)")
        if key.expires_at is not None and key.expires_at <= now:
            raise InvalidKey("API 密钥已过期 (expired API key)")
        return key

    def task(self, code: str) -> TaskAssignmentPublished | None:
        """The assignment of this task, if known."""
        with self._lock:
            return self.tasks.get(code)


def _decode(raw: bytes) -> DirectoryEntry | None:
    try:
        return decode_directory_event(raw)
    except (ValueError, UnsupportedEvent) as exc:
        # Not ours to dead-letter: the tracker owns this topic. Skip and say so.
        metrics.CONSUMER_MESSAGES.labels(topics.DIRECTORY, "skipped").inc()
        log.error("directory.undecodable", error=str(exc))
        return None


def _entity(message: Any) -> str | None:
    """The entity a record is about: its key, or for an unkeyed value the value's own."""
    if message.key is not None:
        return str(message.key.decode("utf-8", "replace"))
    if message.value is None:
        return None
    entry = _decode(message.value)
    return entity_of(entry) if entry is not None else None


class DirectoryFollower:
    """Reads the directory topic from the beginning and keeps following it.

    `caught_up` is set once everything that was on the topic at start has been read and
    applied. On a reconnect the topic is read again into a fresh state that replaces the
    old one when complete; until then the old state keeps serving.
    """

    def __init__(self, settings: CommonSettings, directory: Directory) -> None:
        self.settings = settings
        self.directory = directory
        self.stop_event = threading.Event()
        self.caught_up = threading.Event()
        self._thread = threading.Thread(target=self._run, name="directory", daemon=True)

    def start(self) -> None:
        """Start following in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop following."""
        self.stop_event.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        backoff = 0.5
        while not self.stop_event.is_set():
            try:
                self._follow()
                backoff = 0.5
            except KafkaError as exc:
                log.warning("directory.follow_failed", error=str(exc))
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _follow(self) -> None:
        consumer = KafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            enable_auto_commit=False,
            group_id=None,
            client_id="directory-follower",
            # Large fetches: the load is one pass over small records.
            max_poll_records=10_000,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            # A revoked key is forgotten at once, not once a fetch fills.
            fetch_max_wait_ms=self.settings.consumer_fetch_max_wait_ms,
        )
        try:
            partitions = consumer.partitions_for_topic(topics.DIRECTORY) or set()
            if not partitions:
                raise KafkaError(f"topic {topics.DIRECTORY} has no partitions yet")
            assigned = [TopicPartition(topics.DIRECTORY, p) for p in partitions]
            consumer.assign(assigned)
            consumer.seek_to_beginning(*assigned)
            targets = consumer.end_offsets(assigned)
            # Latest raw value per entity while loading (None: deleted); None once loaded.
            loading: dict[str, bytes | None] | None = {}
            reached = self._reached(consumer, targets)
            while not self.stop_event.is_set():
                # Once the end offsets are reached, a short poll drains what is buffered.
                batch = consumer.poll(timeout_ms=100 if reached else 500)
                read = 0
                for messages in batch.values():
                    read += len(messages)
                    metrics.CONSUMER_MESSAGES.labels(topics.DIRECTORY, "applied").inc(len(messages))
                    for message in messages:
                        if loading is None:
                            self._apply(message)
                        elif (entity := _entity(message)) is not None:
                            loading[entity] = message.value
                if loading is None:
                    continue
                # Tansu's ListOffsets reports the last batch's base offset + 1, not the end
                # of the log: reaching it is not enough, the poll after it must come back
                # empty too.
                if reached and not read:
                    self._load(loading)
                    loading = None
                else:
                    reached = self._reached(consumer, targets)
        finally:
            consumer.close()

    @staticmethod
    def _reached(consumer: KafkaConsumer, targets: dict[TopicPartition, int]) -> bool:
        return all(consumer.position(tp) >= end for tp, end in targets.items())

    def _load(self, latest: dict[str, bytes | None]) -> None:
        decoded = (_decode(raw) for raw in latest.values() if raw is not None)
        self.directory.replace(entry for entry in decoded if entry is not None)
        self.caught_up.set()
        log.info(
            "directory.loaded",
            records=len(latest),
            keys=len(self.directory.keys),
            tasks=len(self.directory.tasks),
        )

    def _apply(self, message: Any) -> None:
        entity = _entity(message)
        if entity is None:
            return
        entry = _decode(message.value) if message.value is not None else None
        if entry is None:
            # A tombstone, or a latest value that cannot be read: nothing valid is left
            # for this entity (fail closed, as the compacted topic will after a restart).
            self.directory.delete(entity)
        else:
            self.directory.apply(entry)
