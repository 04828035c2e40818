"""Kafka plumbing: topic set-up, an acks=all idempotent producer, and a consumer loop that
commits only after the work is durable and sends poison messages to a dead-letter topic."""

from __future__ import annotations

import contextlib
import enum
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.producer.transaction_manager import TransactionState

from shared import metrics
from shared.settings import CommonSettings
from shared.topics import CONFIGS, dlq

log = structlog.get_logger(__name__)


class PoisonMessage(Exception):
    """A message that can never be processed; it goes to the DLQ and the consumer moves on."""


class ConsumerHalted(RuntimeError):
    """Too many consecutive poison messages: stop rather than drain the topic into the DLQ."""


@dataclass(frozen=True)
class MessagePosition:
    """Where a consumed message came from, recorded with the processed event."""

    topic: str
    partition: int
    offset: int

    @classmethod
    def of(cls, message: Any) -> MessagePosition:
        """The position of a consumed Kafka record."""
        return cls(message.topic, message.partition, message.offset)


class Outcome(enum.Enum):
    """What a handler did with a message."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"


def topic_specs(settings: CommonSettings, names: Iterable[str]) -> list[NewTopic]:
    """How each topic is created: partitions, replication and its settings (`topics.CONFIGS`)."""
    return [
        NewTopic(
            name,
            settings.topic_partitions,
            settings.topic_replication_factor,
            topic_configs=dict(CONFIGS.get(name, {})),
        )
        for name in names
    ]


def ensure_topics(settings: CommonSettings, topics: Iterable[str]) -> None:
    """Create each topic and its DLQ if missing; bring existing ones to their settings."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, client_id="duban-admin"
    )
    try:
        existing = set(admin.list_topics())
        wanted = [name for topic in topics for name in (topic, dlq(topic))]
        missing = topic_specs(settings, [name for name in wanted if name not in existing])
        if missing:
            # Another service may create it between our list and create.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
        _align_configs(admin, [name for name in wanted if name in existing and name in CONFIGS])
    finally:
        admin.close()


def _align_configs(admin: KafkaAdminClient, names: list[str]) -> None:
    """Set the wanted settings on topics created before they were wanted (e.g. compaction)."""
    if not names:
        return
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names],
            config_filter="all",
        )["topic"]
        stale = [
            ConfigResource(ConfigResourceType.TOPIC, name, configs=dict(CONFIGS[name]))
            for name in names
            if any(
                described.get(name, {}).get(key, {}).get("value") != value
                for key, value in CONFIGS[name].items()
            )
        ]
        if stale:
            admin.alter_configs(stale, raise_on_unknown=False)
            log.info("kafka.topic_configs_aligned", topics=[r.name for r in stale])
    except KafkaError as exc:
        # The topic still works; only its clean-up differs. Say so and carry on.
        log.warning("kafka.topic_configs_unaligned", topics=names, error=str(exc))


def make_producer(settings: CommonSettings, *, max_block_ms: int = 5_000) -> KafkaProducer:
    """A producer that waits for all in-sync replicas and never duplicates on retry."""
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        # Fail fast when the broker is unreachable so callers can answer 503 instead of hanging.
        max_block_ms=max_block_ms,
        bootstrap_timeout_ms=max_block_ms,
        request_timeout_ms=5_000,
        delivery_timeout_ms=10_000,
        client_id="duban",
    )
    _reinitialise_after_producer_id_reset(producer)
    return producer


def _reinitialise_after_producer_id_reset(producer: KafkaProducer) -> None:
    """Keep an idempotent producer usable after the broker was unreachable for a while.

    When a batch that was already sent expires (no answer within delivery_timeout_ms),
    kafka-python 3.0.12 drops the producer id but leaves the producer READY, and it only asks
    for a new id from UNINITIALIZED: every later send then times out until the process
    restarts (intake answers 503 for good, the outbox relay and the DLQ stall). The Java
    client goes back to UNINITIALIZED on that reset; do the same.
    """
    manager = getattr(producer, "_transaction_manager", None)
    if manager is None or manager.is_transactional() or not hasattr(manager, "_current_state"):
        return
    reset = manager.reset_producer_id

    def reset_and_reinitialise() -> None:
        reset()
        with manager._lock:
            if manager._current_state == TransactionState.READY:
                manager._current_state = TransactionState.UNINITIALIZED

    manager.reset_producer_id = reset_and_reinitialise


def publish(
    producer: KafkaProducer, topic: str, key: str, value: bytes, *, timeout: float = 10.0
) -> None:
    """Send one message and block until the broker acknowledged it."""
    started = time.perf_counter()
    try:
        producer.send(topic, key=key.encode("utf-8"), value=value).get(timeout=timeout)
    except KafkaError:
        metrics.PUBLISH_FAILURES.labels(topic).inc()
        raise
    metrics.PUBLISH_LATENCY.labels(topic).observe(time.perf_counter() - started)


ConsumerState = Literal["starting", "connecting", "ok", "halted", "stopped"]


@dataclass
class ConsumerLoop:
    """Consumes one topic with manual commits.

    The handler owns the transaction for each message: when it returns, the work is durable
    and the offset may be committed. `PoisonMessage` (or a decoding error the handler maps to
    it) sends the message to `<topic>-dlq` with its error; any other exception is transient:
    the partition is rewound to the failed message and retried after a backoff.

    The loop records its own state: `readiness()` is the check a service puts in `/readyz`,
    and `duban_consumer_running{topic}` is 1 while `run()` runs. A loop that halted on a
    poison streak or died (e.g. the DLQ could not be written) stays stopped and says why.
    """

    settings: CommonSettings
    topic: str
    group_id: str
    handler: Callable[[Any], Outcome]
    stop_event: threading.Event = field(default_factory=threading.Event)
    poll_timeout_ms: int = 500
    max_backoff_seconds: float = 10.0
    lag_interval_seconds: float = 5.0
    # How the dead-letter producer is made (a seam for tests that break it).
    dlq_producer_factory: Callable[[CommonSettings], KafkaProducer] = make_producer
    # (state, why): one tuple, so a reader never sees a state with another state's reason.
    _status: tuple[ConsumerState, str | None] = ("starting", None)
    _poison_streaks: dict[TopicPartition, int] = field(default_factory=dict)

    @property
    def state(self) -> ConsumerState:
        """starting, connecting (to the broker), ok, halted (poison streak) or stopped."""
        return self._status[0]

    @property
    def reason(self) -> str | None:
        """Why the loop halted or stopped; None while it runs."""
        return self._status[1]

    @property
    def healthy(self) -> bool:
        """True while the loop runs and its last poll reached the broker."""
        return self.state == "ok"

    def readiness(self) -> dict[str, str]:
        """The `/readyz` check: `{"consumer": "ok"}`, or what is wrong and why."""
        state, reason = self._status
        if state in ("halted", "stopped"):
            return {"consumer": f"{state}: {reason}"}
        return {"consumer": state}

    def run(self) -> None:
        """Consume until `stop_event` is set; raises `ConsumerHalted` on a poison flood, and
        whatever else ended the loop (both recorded first, for readiness and the metric)."""
        running = metrics.CONSUMER_RUNNING.labels(self.topic)
        running.set(1)
        self._status = ("connecting", None)
        consumer: KafkaConsumer | None = None
        dlq_producer: KafkaProducer | None = None
        try:
            consumer = self._connect()
            if consumer is not None:
                dlq_producer = self.dlq_producer_factory(self.settings)
                self._consume(consumer, dlq_producer)
            self._status = ("stopped", "已按要求停止 (stop requested)")
        except ConsumerHalted as exc:
            self._status = ("halted", str(exc))
            log.critical("consumer.halted", topic=self.topic, group=self.group_id, reason=str(exc))
            raise
        except BaseException as exc:
            why = f"{type(exc).__name__}: {exc}"
            self._status = (
                "stopped",
                f"{self.topic} 的消费者 ({self.group_id}) 意外退出 (consumer died): {why}",
            )
            log.critical("consumer.died", topic=self.topic, group=self.group_id, error=why)
            raise
        finally:
            running.set(0)
            if dlq_producer is not None:
                with contextlib.suppress(Exception):
                    dlq_producer.close(timeout=5)
            if consumer is not None:
                with contextlib.suppress(Exception):
                    consumer.close(autocommit=False)

    def _connect(self) -> KafkaConsumer | None:
        """Join the group, retrying while the broker is unreachable; None if told to stop."""
        backoff = 0.5
        while not self.stop_event.is_set():
            try:
                return KafkaConsumer(
                    self.topic,
                    bootstrap_servers=self.settings.kafka_bootstrap_servers,
                    group_id=self.group_id,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    session_timeout_ms=self.settings.consumer_session_timeout_ms,
                    heartbeat_interval_ms=self.settings.consumer_heartbeat_interval_ms,
                    max_poll_records=200,
                    fetch_max_wait_ms=self.settings.consumer_fetch_max_wait_ms,
                    client_id=self.group_id,
                )
            except KafkaError as exc:
                log.warning("consumer.connect_failed", topic=self.topic, error=str(exc))
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_seconds)
        return None

    def _consume(self, consumer: KafkaConsumer, dlq_producer: KafkaProducer) -> None:
        backoff = 0.5
        last_lag = 0.0
        while not self.stop_event.is_set():
            try:
                batch = consumer.poll(timeout_ms=self.poll_timeout_ms)
            except KafkaError as exc:
                self._status = ("connecting", None)
                log.warning("consumer.poll_failed", topic=self.topic, error=str(exc))
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_seconds)
                continue
            self._status = ("ok", None)
            if batch:
                if self._process_batch(consumer, dlq_producer, batch):
                    backoff = 0.5
                else:
                    self.stop_event.wait(backoff)
                    backoff = min(backoff * 2, self.max_backoff_seconds)
            if time.monotonic() - last_lag > self.lag_interval_seconds:
                last_lag = time.monotonic()
                self._record_lag(consumer)

    def _process_batch(
        self, consumer: KafkaConsumer, dlq_producer: KafkaProducer, batch: dict[Any, list[Any]]
    ) -> bool:
        """Handle a polled batch; returns False if a transient failure rewound a partition."""
        done: dict[TopicPartition, int] = {}
        failed_at: dict[TopicPartition, int] = {}
        for tp, messages in batch.items():
            for message in messages:
                if self.stop_event.is_set():
                    failed_at[tp] = message.offset
                    break
                try:
                    outcome = self.handler(message)
                except PoisonMessage as exc:
                    self._dead_letter(dlq_producer, tp, message, exc)
                except Exception as exc:
                    log.warning(
                        "consumer.transient_failure",
                        topic=message.topic,
                        partition=message.partition,
                        offset=message.offset,
                        error=repr(exc),
                    )
                    metrics.CONSUMER_MESSAGES.labels(self.topic, "retried").inc()
                    failed_at[tp] = message.offset
                    break
                else:
                    self._poison_streaks.pop(tp, None)
                    metrics.CONSUMER_MESSAGES.labels(self.topic, outcome.value).inc()
                done[tp] = message.offset + 1
        if done:
            offsets = {tp: OffsetAndMetadata(off, "", -1) for tp, off in done.items()}
            try:
                consumer.commit(offsets)
            except KafkaError as exc:
                # Work is durable and idempotent; a lost commit only means a harmless redelivery.
                log.warning("consumer.commit_failed", topic=self.topic, error=str(exc))
        for tp, offset in failed_at.items():
            consumer.seek(tp, offset)
        return not failed_at

    def _dead_letter(
        self, producer: KafkaProducer, tp: TopicPartition, message: Any, exc: Exception
    ) -> None:
        # Counted per partition: a streak on one partition says nothing about another's.
        streak = self._poison_streaks[tp] = self._poison_streaks.get(tp, 0) + 1
        headers = [
            ("error", str(exc)[:2000].encode("utf-8")),
            ("source_topic", message.topic.encode()),
            ("source_partition", str(message.partition).encode()),
            ("source_offset", str(message.offset).encode()),
        ]
        producer.send(
            dlq(message.topic), key=message.key, value=message.value, headers=headers
        ).get(timeout=10)
        metrics.CONSUMER_MESSAGES.labels(self.topic, "dlq").inc()
        log.error(
            "consumer.dead_lettered",
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            error=str(exc),
        )
        if streak >= self.settings.poison_streak_limit:
            raise ConsumerHalted(
                f"{streak} consecutive messages on {self.topic} partition {tp.partition} were "
                "poison; stopping instead of draining the topic into the DLQ"
            )

    def _record_lag(self, consumer: KafkaConsumer) -> None:
        assigned = consumer.assignment()
        if not assigned:
            return
        try:
            reported = consumer.end_offsets(list(assigned))
            for tp in assigned:
                lag = partition_lag(
                    position=consumer.position(tp),
                    reported_end=reported.get(tp),
                    highwater=consumer.highwater(tp),
                )
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
        except KafkaError as exc:
            log.debug("consumer.lag_unavailable", error=str(exc))


def partition_lag(*, position: int, reported_end: int | None, highwater: int | None) -> int:
    """Messages of one partition not yet read: the partition's end minus our position.

    The end is the larger of what ListOffsets reports and the high watermark of our last
    fetch. Kafka reports both right; Tansu's ListOffsets answers the start of the last
    batch + 1, which undercounts whenever that batch holds several records, while its
    fetch responses carry the true high watermark (docs/operations.md).
    """
    end = max(reported_end or 0, highwater or 0)
    return max(0, end - position)
