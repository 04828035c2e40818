"""Read model of the tracker's directory: key hashes and task assignments.

It is rebuilt from the start of `tracker.directory` on every start and then followed, so
intake needs no database of its own and keeps accepting reports while the tracker is down.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field

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


class InvalidKey(Exception):
    """A presented API key is malformed, unknown, revoked or expired."""


@dataclass
class Directory:
    """Latest known keys (by hash) and task assignments (by code)."""

    keys: dict[str, ApiKeyPublished] = field(default_factory=dict)
    tasks: dict[str, TaskAssignmentPublished] = field(default_factory=dict)
    _key_ids: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def apply(self, event: ApiKeyPublished | TaskAssignmentPublished) -> None:
        """Fold one directory event into the model."""
        with self._lock:
            if isinstance(event, ApiKeyPublished):
                old_hash = self._key_ids.get(event.key_id)
                if old_hash is not None and old_hash != event.key_hash:
                    self.keys.pop(old_hash, None)
                self._key_ids[event.key_id] = event.key_hash
                self.keys[event.key_hash] = event
            else:
                self.tasks[event.task_code] = event

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


class DirectoryFollower:
    """Reads the directory topic from the beginning and keeps following it."""

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
        )
        try:
            partitions = consumer.partitions_for_topic(topics.DIRECTORY) or set()
            if not partitions:
                raise KafkaError(f"topic {topics.DIRECTORY} has no partitions yet")
            assigned = [TopicPartition(topics.DIRECTORY, p) for p in partitions]
            consumer.assign(assigned)
            consumer.seek_to_beginning(*assigned)
            targets = consumer.end_offsets(assigned)
            while not self.stop_event.is_set():
                for messages in consumer.poll(timeout_ms=500).values():
                    for message in messages:
                        self._apply(message.value)
                if not self.caught_up.is_set() and all(
                    consumer.position(tp) >= end for tp, end in targets.items()
                ):
                    self.caught_up.set()
                    log.info(
                        "directory.loaded",
                        keys=len(self.directory.keys),
                        tasks=len(self.directory.tasks),
                    )
        finally:
            consumer.close()

    def _apply(self, raw: bytes) -> None:
        try:
            self.directory.apply(decode_directory_event(raw))
            metrics.CONSUMER_MESSAGES.labels(topics.DIRECTORY, "applied").inc()
        except (ValueError, UnsupportedEvent) as exc:
            # Not ours to dead-letter: the tracker owns this topic. Skip and say so.
            metrics.CONSUMER_MESSAGES.labels(topics.DIRECTORY, "skipped").inc()
            log.error("directory.undecodable", error=str(exc))
