"""The consumer loop on a real broker: a loop that dies turns readiness red and says why, and
poison streaks are counted per partition."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from devtools.servers import Broker, start_broker
from services.tracker.api import create_app as create_tracker
from services.tracker.settings import TrackerSettings
from shared import topics
from shared.clock import SHANGHAI, FixedClock
from shared.db import make_engine, make_session_factory
from shared.kafka import ConsumerHalted, ConsumerLoop, Outcome, PoisonMessage, ensure_topics
from shared.kafka import make_producer as make_kafka_producer
from shared.settings import CommonSettings
from tests.faults.harness import group_offsets

from .stack import FAST, wait_until

pytestmark = pytest.mark.integration


def running(client: TestClient, topic: str) -> float | None:
    """`duban_consumer_running{topic}` as the service's /metrics page shows it."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "duban_consumer_running" and sample.labels["topic"] == topic:
                return sample.value
    return None


def test_a_consumer_that_cannot_dead_letter_turns_readiness_red(
    database_url: str, broker: Broker, tmp_path: Path
) -> None:
    values: dict[str, Any] = {"kafka_bootstrap_servers": broker.bootstrap, **FAST}
    settings = TrackerSettings(database_url=database_url, scan_interval_seconds=3600, **values)
    # The dead-letter producer talks to a broker of its own, which is gone when poison arrives.
    dlq_broker = start_broker(log_path=tmp_path / "dlq-broker.log")
    dlq_settings = settings.model_copy(update={"kafka_bootstrap_servers": dlq_broker.bootstrap})
    clock = FixedClock(dt.datetime(2022, 5, 20, 10, 0, tzinfo=SHANGHAI))
    app = create_tracker(settings, make_session_factory(make_engine(database_url)), clock)
    app.state.workers.consumer.dlq_producer_factory = lambda _: make_kafka_producer(dlq_settings)
    try:
        with TestClient(app) as tracker:
            wait_until(lambda: tracker.get("/readyz").status_code == 200, what="tracker ready")
            assert running(tracker, topics.PROGRESS_REPORTS) == 1
            dlq_broker.stop()

            producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
            try:
                producer.send(topics.PROGRESS_REPORTS, key=b"T2022-001", value=b"{not json")
                producer.flush(timeout=10)
            finally:
                producer.close()

            def stopped() -> dict[str, str] | None:
                response = tracker.get("/readyz")
                checks: dict[str, str] = response.json()["checks"]
                down = response.status_code == 503 and checks["consumer"].startswith("stopped")
                return checks if down else None

            checks = wait_until(stopped, timeout=60, what="readiness to report the dead consumer")
            assert checks["database"] == "ok"
            assert topics.PROGRESS_REPORTS in checks["consumer"], checks
            assert "KafkaTimeoutError" in checks["consumer"], checks
            assert running(tracker, topics.PROGRESS_REPORTS) == 0
            # Alive, so an operator can read why; only readiness is red.
            assert tracker.get("/healthz").status_code == 200
            # The poison was not committed past: a restarted consumer sees it again.
            offsets = group_offsets(
                broker.bootstrap, settings.consumer_group, topics.PROGRESS_REPORTS
            )
            assert all(committed == 0 for committed, _end in offsets.values()), offsets
    finally:
        dlq_broker.stop()


def poison_or_apply(message: object) -> Outcome:
    """Poison is any message whose value starts with `poison`."""
    if getattr(message, "value", b"").startswith(b"poison"):
        raise PoisonMessage("毒消息 (test poison)")
    return Outcome.APPLIED


def run_until_halted(loop: ConsumerLoop) -> None:
    """Run the loop in a thread; the halt it ends with is the test's to look at."""
    with contextlib.suppress(ConsumerHalted):
        loop.run()


def dead_letters(bootstrap: str, topic: str) -> list[bytes]:
    """Everything on `topic`'s DLQ, read from the beginning."""
    consumer = KafkaConsumer(
        topics.dlq(topic),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    try:
        return [message.value for message in consumer]
    finally:
        consumer.close()


def test_poison_streaks_are_counted_per_partition(broker: Broker) -> None:
    topic = "test.poison-streaks"
    values: dict[str, Any] = {"kafka_bootstrap_servers": broker.bootstrap, **FAST}
    settings = CommonSettings(poison_streak_limit=3, **values)
    ensure_topics(settings, [topic])
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    try:
        # Two poison messages on each of partitions 0 and 1: four in a row overall, but no
        # partition reaches the limit of 3. Then partition 2 gets three in a row: it does.
        for partition in (0, 1):
            for n in range(2):
                producer.send(topic, value=f"poison {partition}/{n}".encode(), partition=partition)
        producer.send(topic, value=b"good", partition=0)
        producer.send(topic, value=b"poison 0/2", partition=0)
        producer.flush(timeout=10)
        loop = ConsumerLoop(
            settings=settings, topic=topic, group_id="streaks", handler=poison_or_apply
        )
        thread = threading.Thread(target=run_until_halted, args=(loop,), daemon=True)
        thread.start()
        wait_until(lambda: len(dead_letters(broker.bootstrap, topic)) == 5, what="5 dead letters")
        assert loop.state == "ok", loop.readiness()

        for n in range(3):
            producer.send(topic, value=f"poison 2/{n}".encode(), partition=2)
        producer.flush(timeout=10)
    finally:
        producer.close()
    reason = wait_until(lambda: loop.reason if loop.state == "halted" else None, what="a halt")
    loop.stop_event.set()
    thread.join(timeout=15)
    assert "partition 2" in reason and reason.startswith("3 consecutive"), reason
    assert loop.readiness() == {"consumer": f"halted: {reason}"}
    assert len(dead_letters(broker.bootstrap, topic)) == 8
