"""Consumer lag on the local broker (Tansu) is the true backlog, also when the producer sent
batches of several records (where Tansu's ListOffsets undercounts the end of the log)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import REGISTRY

from devtools.servers import Broker
from shared.kafka import ConsumerLoop, Outcome, ensure_topics, partition_lag
from shared.settings import CommonSettings
from tests.faults.harness import group_offsets, high_watermarks

from .stack import FAST, wait_until

pytestmark = pytest.mark.integration

TOPIC = "test.lag"
BATCHES = 6
PER_BATCH = 10
# The handler applies the messages before this offset; from here on it fails (transiently),
# so the consumer stays put and everything after it is backlog.
STUCK_AT = 25


def reported_end(bootstrap: str) -> int:
    """What the broker's ListOffsets says the end of partition 0 is."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        tp = TopicPartition(TOPIC, 0)
        return int(consumer.end_offsets([tp])[tp])
    finally:
        consumer.close()


def lag_gauge() -> float | None:
    return REGISTRY.get_sample_value(
        "duban_consumer_lag_messages", {"topic": TOPIC, "partition": "0"}
    )


def test_lag_is_the_true_backlog_after_batches_of_several_records(broker: Broker) -> None:
    values: dict[str, Any] = {"kafka_bootstrap_servers": broker.bootstrap, **FAST}
    settings = CommonSettings(topic_partitions=1, **values)
    ensure_topics(settings, [TOPIC])
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=50)
    try:
        for batch in range(BATCHES):
            for n in range(PER_BATCH):
                producer.send(TOPIC, value=f"{batch}/{n}".encode(), partition=0)
            producer.flush(timeout=10)  # one produce request, one batch of PER_BATCH records
    finally:
        producer.close()
    true_end = high_watermarks(broker.bootstrap, TOPIC)[0]
    assert true_end == BATCHES * PER_BATCH
    # The premise: Tansu's ListOffsets answers the last batch's base offset + 1.
    assert reported_end(broker.bootstrap) < true_end

    def apply_until_stuck(message: Any) -> Outcome:
        if message.offset >= STUCK_AT:
            raise RuntimeError("下游暂不可用 (test: stuck)")
        return Outcome.APPLIED

    loop = ConsumerLoop(
        settings=settings,
        topic=TOPIC,
        group_id="lag",
        handler=apply_until_stuck,
        lag_interval_seconds=0.2,
        max_backoff_seconds=0.5,
    )
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        committed = wait_until(
            lambda: group_offsets(broker.bootstrap, "lag", TOPIC)[0][0] or None,
            what="the applied messages committed",
        )
        assert committed == STUCK_AT
        backlog = true_end - committed
        wait_until(
            lambda: lag_gauge() == backlog or None,
            what=f"duban_consumer_lag_messages to be the backlog, {backlog}",
        )
    finally:
        loop.stop_event.set()
        thread.join(timeout=15)


def test_the_end_is_the_larger_of_the_reported_end_and_the_high_watermark() -> None:
    assert partition_lag(position=25, reported_end=51, highwater=60) == 35  # Tansu
    assert partition_lag(position=25, reported_end=60, highwater=None) == 35  # not fetched yet
    assert partition_lag(position=25, reported_end=60, highwater=55) == 35  # an older fetch
    assert partition_lag(position=60, reported_end=51, highwater=None) == 0  # never negative
