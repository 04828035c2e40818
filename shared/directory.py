"""Read model of the tracker's directory: key hashes and task assignments.

`tracker.directory` is a compacted changelog keyed by entity (`key:<key_id>`,
`task:<code>`): the state is the last value of each key, and a null value (tombstone)
deletes it. The follower reads it on every start and then keeps following, so intake needs
no database of its own and keeps accepting reports while the tracker is down. It reads
from the start, or, given `DUBAN_DIRECTORY_CACHE_DIR` and a checkpoint there that is safe
to use (shared/directory_checkpoint.py), from the checkpoint's offsets on. While loading it
keeps only the latest raw value per key and decodes the survivors once, so an uncompacted
history (a broker that does not compact, or the not yet cleaned head of the log) costs
little more than reading it.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import structlog
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError

from shared import directory_checkpoint, metrics, topics
from shared.apikeys import hash_key, parse_key
from shared.directory_checkpoint import Checkpoint, CheckpointUnreadable, PartitionMark
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


FollowerState = Literal["starting", "ok", "stopped"]


@dataclass(frozen=True)
class _AtEnd:
    """At `at` (wall clock, taken before asking) the broker reported `ends` and the follower's
    positions were at or past them: whatever lies at or after a position was appended later."""

    at: dt.datetime
    ends: dict[int, int]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class DirectoryFollower:
    """Reads the directory topic and keeps following it.

    `caught_up` is set once everything that was on the topic at start has been read and
    applied. On a reconnect the topic is read again (from the checkpoint, if usable) into a
    fresh state that replaces the old one when complete; until then the old state keeps
    serving. `readiness()` is the check a service puts in `/readyz`; a thread that died
    makes it fail, and `duban_consumer_running{topic="tracker.directory"}` is 1 while the
    thread runs.
    """

    def __init__(self, settings: CommonSettings, directory: Directory) -> None:
        self.settings = settings
        self.directory = directory
        self.cache_dir = settings.directory_cache_dir
        self.stop_event = threading.Event()
        self.caught_up = threading.Event()
        # Records read from the topic by this follower (all starts and reconnects).
        self.messages_read = 0
        # What became of the checkpoint at the last start: restored, ignored: <why>,
        # unreadable: <why>, missing, or None without a cache directory.
        self.checkpoint_outcome: str | None = None
        self._status: tuple[FollowerState, str | None] = ("starting", None)
        # The latest raw value of every entity the directory holds, by message key.
        self._live: dict[str, bytes] = {}
        self._at_end: _AtEnd | None = None
        self._topic_id: str | None = None
        self._retention = topics.DIRECTORY_TOMBSTONE_RETENTION
        self._changed = False
        self._saved_at = 0.0
        self._thread = threading.Thread(target=self._run, name="directory", daemon=True)

    def start(self) -> None:
        """Start following in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop following (a checkpoint is written first, if configured and caught up)."""
        self.stop_event.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def readiness(self) -> dict[str, str]:
        """The `/readyz` check: `{"directory": "ok"}`, `loading`, or why the follower stopped."""
        state, reason = self._status
        if state == "stopped":
            return {"directory": f"stopped: {reason}"}
        return {"directory": "ok" if self.caught_up.is_set() else "loading"}

    def _run(self) -> None:
        running = metrics.CONSUMER_RUNNING.labels(topics.DIRECTORY)
        running.set(1)
        self._status = ("ok", None)
        backoff = 0.5
        try:
            while not self.stop_event.is_set():
                try:
                    self._follow()
                    backoff = 0.5
                except KafkaError as exc:
                    log.warning("directory.follow_failed", error=str(exc))
                    self.stop_event.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
        except BaseException as exc:
            why = f"{type(exc).__name__}: {exc}"
            running.set(0)
            self._status = ("stopped", f"目录跟读线程意外退出 (directory follower died): {why}")
            log.critical("directory.follower_died", error=why, exc_info=True)
        else:
            running.set(0)
            self._status = ("stopped", "已按要求停止 (stop requested)")

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
            assigned = [TopicPartition(topics.DIRECTORY, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            self._at_end = None
            # Latest raw value per entity while loading (None: deleted); None once loaded.
            loading: dict[str, bytes | None] | None = self._restore(consumer, assigned)
            started_at = _now()
            targets = consumer.end_offsets(assigned)
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
                self.messages_read += read
                if loading is None:
                    self._checkpoint_if_due(consumer, assigned)
                    continue
                # Tansu's ListOffsets reports the last batch's base offset + 1, not the end
                # of the log: reaching it is not enough, the poll after it must come back
                # empty too.
                if reached and not read:
                    self._load(loading)
                    loading = None
                    self._at_end = _AtEnd(started_at, {tp.partition: targets[tp] for tp in targets})
                    self._save(consumer, assigned)
                else:
                    reached = self._reached(consumer, targets)
            if loading is None:
                self._save(consumer, assigned)
        finally:
            consumer.close()

    @staticmethod
    def _reached(consumer: KafkaConsumer, targets: dict[TopicPartition, int]) -> bool:
        return all(consumer.position(tp) >= end for tp, end in targets.items())

    def _load(self, latest: dict[str, bytes | None]) -> None:
        live: dict[str, bytes] = {}
        entries: list[DirectoryEntry] = []
        for entity, raw in latest.items():
            entry = _decode(raw) if raw is not None else None
            if raw is not None and entry is not None:
                live[entity] = raw
                entries.append(entry)
        self.directory.replace(entries)
        self._live = live
        self._changed = False
        self.caught_up.set()
        log.info(
            "directory.loaded",
            records=len(latest),
            keys=len(self.directory.keys),
            tasks=len(self.directory.tasks),
            read=self.messages_read,
            checkpoint=self.checkpoint_outcome,
        )

    def _apply(self, message: Any) -> None:
        entity = _entity(message)
        if entity is None:
            return
        self._changed = True
        entry = _decode(message.value) if message.value is not None else None
        if entry is None:
            # A tombstone, or a latest value that cannot be read: nothing valid is left
            # for this entity (fail closed, as the compacted topic will after a restart).
            self.directory.delete(entity)
            self._live.pop(entity, None)
        else:
            self.directory.apply(entry)
            self._live[entity] = message.value

    # ----------------------------------------------------------------- checkpoint

    def _describe_topic(self) -> None:
        """The topic's id, and the least time its tombstones are kept (ours or the broker's)."""
        admin = KafkaAdminClient(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id="directory-follower",
        )
        try:
            described = admin.describe_topics([topics.DIRECTORY])
            topic_id = next(
                (t.get("topic_id") for t in described if t.get("name") == topics.DIRECTORY), None
            )
            # No id (a broker before KIP-516): the offsets are then the only check.
            self._topic_id = str(topic_id) if topic_id else None
            configs = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topics.DIRECTORY)],
                config_filter="all",
            )["topic"].get(topics.DIRECTORY, {})
        finally:
            admin.close()
        retention = topics.DIRECTORY_TOMBSTONE_RETENTION
        value = configs.get("delete.retention.ms", {}).get("value")
        if isinstance(value, str) and value.isdigit():
            retention = min(retention, dt.timedelta(milliseconds=int(value)))
        self._retention = retention

    def _restore(
        self, consumer: KafkaConsumer, assigned: list[TopicPartition]
    ) -> dict[str, bytes | None]:
        """Seek to where reading starts; the state to start from (empty: from the beginning)."""
        consumer.seek_to_beginning(*assigned)
        if self.cache_dir is None:
            return {}
        self._describe_topic()
        outcome = self._usable_checkpoint(consumer, assigned)
        if not isinstance(outcome, Checkpoint):
            self.checkpoint_outcome = outcome
            metrics.DIRECTORY_CHECKPOINTS.labels(outcome.split(":")[0]).inc()
            if outcome != "missing":
                log.warning("directory.checkpoint_not_used", outcome=outcome)
            return {}
        for tp in assigned:
            consumer.seek(tp, outcome.partitions[tp.partition].offset)
        self.checkpoint_outcome = "restored"
        metrics.DIRECTORY_CHECKPOINTS.labels("restored").inc()
        log.info(
            "directory.checkpoint_restored",
            entries=len(outcome.entries),
            confirmed_at=outcome.confirmed_at.isoformat(),
            offsets={p: m.offset for p, m in sorted(outcome.partitions.items())},
        )
        return {entity: raw.encode("utf-8") for entity, raw in outcome.entries.items()}

    def _usable_checkpoint(
        self, consumer: KafkaConsumer, assigned: list[TopicPartition]
    ) -> Checkpoint | str:
        assert self.cache_dir is not None
        try:
            checkpoint = directory_checkpoint.load(self.cache_dir)
        except CheckpointUnreadable as exc:
            return f"unreadable: {exc}"
        if checkpoint is None:
            return "missing"
        beginnings = consumer.beginning_offsets(assigned)
        ends = consumer.end_offsets(assigned)
        why = checkpoint.unusable(
            topic_id=self._topic_id,
            beginnings={tp.partition: offset for tp, offset in beginnings.items()},
            ends={tp.partition: offset for tp, offset in ends.items()},
            now=_now(),
            retention=self._retention,
        )
        return checkpoint if why is None else f"ignored: {why}"

    def _checkpoint_if_due(self, consumer: KafkaConsumer, assigned: list[TopicPartition]) -> None:
        if self.cache_dir is None or self._at_end is None:
            return
        if time.monotonic() - self._saved_at < self.settings.directory_checkpoint_seconds:
            return
        # A quiet directory's checkpoint is renewed well before it is too old to be used.
        renew_after = self._retention * (directory_checkpoint.USABLE_SHARE / 4)
        if not (self._changed or _now() - self._at_end.at >= renew_after):
            return
        asked_at = _now()
        ends = consumer.end_offsets(assigned)
        if all(consumer.position(tp) >= end for tp, end in ends.items()):
            self._at_end = _AtEnd(asked_at, {tp.partition: end for tp, end in ends.items()})
        self._save(consumer, assigned)

    def _save(self, consumer: KafkaConsumer, assigned: list[TopicPartition]) -> None:
        """Write the state and the positions it covers (never fatal: logged and counted)."""
        at_end = self._at_end
        if self.cache_dir is None or at_end is None:
            return
        self._saved_at = time.monotonic()
        try:
            checkpoint = Checkpoint(
                topic=topics.DIRECTORY,
                topic_id=self._topic_id,
                partition_count=len(assigned),
                written_at=_now(),
                confirmed_at=at_end.at,
                partitions={
                    tp.partition: PartitionMark(
                        offset=consumer.position(tp), end=at_end.ends[tp.partition]
                    )
                    for tp in assigned
                },
                entries={entity: raw.decode("utf-8") for entity, raw in self._live.items()},
            )
            path = directory_checkpoint.save(self.cache_dir, checkpoint)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            metrics.DIRECTORY_CHECKPOINTS.labels("failed").inc()
            log.warning("directory.checkpoint_failed", error=str(exc))
            return
        self._changed = False
        metrics.DIRECTORY_CHECKPOINTS.labels("saved").inc()
        log.debug("directory.checkpoint_saved", path=str(path), entries=len(checkpoint.entries))
