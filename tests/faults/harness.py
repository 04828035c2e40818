"""Process harness for the fault suite.

The services run as separate child processes (`python -m services.<name>.main`), exactly as
`make run` starts them, on a real Tansu broker and a real Postgres. A service can be killed
with SIGKILL and started again with the same environment, port and log file.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import Engine, create_engine, pool, select, text
from sqlalchemy.orm import Session, sessionmaker

from devtools.servers import Broker, free_port
from services.tracker.catalog.model import ParsedDocument
from services.tracker.catalog.parsing import parse_document
from services.tracker.catalog.readers import read_document_text
from services.tracker.importer import import_document
from services.tracker.keys import create_key
from services.tracker.orm import Task, Unit
from shared.clock import OffsetClock
from shared.db import UnitOfWork

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
SEED_TABLE = ROOT / "tests" / "fixtures" / "seeds" / "002_97a1c385b29df4f9.txt"

# Environment variables a developer's shell may carry that must not leak into the children.
_OWN_PREFIXES = ("DUBAN_", "DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.2
) -> T:
    """Poll `probe` until it returns something truthy; fail saying what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class ServiceProcess:
    """One service as a child process; restarts keep its port, environment and log."""

    name: str
    module: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        """Base URL of its HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """Process id of the running child."""
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    @property
    def alive(self) -> bool:
        """True while the child process runs."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the child (again), appending to its log."""
        assert not self.alive, f"{self.name} is already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts} of {self.name} =====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed, no offset is committed."""
        if self.alive:
            os.kill(self.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """Graceful stop (SIGTERM), killed if it does not exit in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def readiness(self) -> tuple[int, dict[str, Any]] | None:
        """(status, body) of `/readyz`, or None if it does not answer."""
        try:
            response = httpx.get(f"{self.url}/readyz", timeout=2.0)
        except httpx.HTTPError:
            return None
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            body = {"raw": response.text}
        return response.status_code, body

    def wait_ready(self, *, timeout: float = 60.0) -> None:
        """Block until `/readyz` answers 200; fail with the log tail if the child died."""

        def ready() -> bool:
            if not self.alive:
                raise AssertionError(
                    f"{self.name} exited with {self.process and self.process.returncode}:\n"
                    + self.log_tail()
                )
            state = self.readiness()
            return state is not None and state[0] == 200

        try:
            wait_until(ready, timeout=timeout, what=f"{self.name} ready", interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of one metric (since this process started) matching `labels`."""
        from prometheus_client.parser import text_string_to_metric_families

        try:
            response = httpx.get(f"{self.url}/metrics", timeout=5.0)
        except httpx.HTTPError:
            return 0.0
        total = 0.0
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of its log, for failure messages."""
        try:
            text = self.log_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_count(self, needle: str) -> int:
        """How many lines of its log contain `needle`."""
        try:
            text = self.log_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return 0
        return sum(needle in line for line in text.splitlines())


@dataclass(frozen=True)
class Seed:
    """The imported catalog and the unit keys to report with."""

    tasks: tuple[str, ...]
    lead_of: dict[str, str]
    keys: dict[str, str]


def seed_document() -> ParsedDocument:
    """The 2022 Tianjin task-division table: 138 tasks, 37 lead units."""
    text, fmt = read_document_text(SEED_TABLE.read_bytes(), SEED_TABLE.name)
    return parse_document(text, fmt=fmt)


@dataclass
class FaultStack:
    """A database, a broker and the services run against them, on one shifted clock."""

    workdir: Path
    database_url: str
    broker: Broker
    clock_at: dt.datetime
    clock_offset: float = 0.0
    services: list[ServiceProcess] = field(default_factory=list)
    engine: Engine | None = None

    def __post_init__(self) -> None:
        # Every service and every restart reads the same shifted clock.
        self.clock_offset = (self.clock_at - dt.datetime.now(dt.UTC)).total_seconds()
        # No pool: the database is stopped in one test and pooled connections would be dead.
        self.engine = create_engine(self.database_url, poolclass=pool.NullPool)
        self.workdir.mkdir(parents=True, exist_ok=True)

    @property
    def session_factory(self) -> sessionmaker[Session]:
        """Sessions on the test's database."""
        assert self.engine is not None
        return sessionmaker(self.engine, expire_on_commit=False)

    def now(self) -> dt.datetime:
        """The services' clock."""
        return OffsetClock(dt.timedelta(seconds=self.clock_offset)).now()

    def env(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """A child's environment: the machine's, minus stray DUBAN_ settings, plus ours."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
        base.update(
            {
                "DATABASE_URL": self.database_url,
                "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
                "DUBAN_ENV": "test",
                # The suite measures delivery, not throttling: thousands of reports per key.
                "DUBAN_RATE_LIMIT_PER_MINUTE": "0",
                "DUBAN_CONSUMER_SESSION_TIMEOUT_MS": "6000",
                "DUBAN_CONSUMER_HEARTBEAT_INTERVAL_MS": "1000",
                "DUBAN_LOG_FORMAT": "json",
                "DUBAN_CLOCK_OFFSET_SECONDS": f"{self.clock_offset:.6f}",
                "PYTHONUNBUFFERED": "1",
            }
        )
        base.update(overrides or {})
        return base

    def seed(self, document: ParsedDocument | None = None) -> Seed:
        """Import the catalog and issue a key for every agency that leads a task."""
        with UnitOfWork(self.session_factory) as uow:
            import_document(uow.session, document or seed_document(), now=self.now())
            uow.session.flush()
            lead_of: dict[str, str] = {}
            for task in uow.session.execute(select(Task).order_by(Task.id)).scalars():
                agencies = [
                    a.unit.name
                    for a in task.assignments
                    if a.role == "lead" and a.unit.kind == "agency"
                ]
                if agencies:
                    lead_of[task.code] = agencies[0]
            keys: dict[str, str] = {}
            for unit in sorted(set(lead_of.values())):
                exists = uow.session.execute(select(Unit.id).where(Unit.name == unit)).scalar()
                assert exists is not None
                keys[unit] = create_key(
                    uow.session,
                    role="unit",
                    unit_name=unit,
                    label="faults",
                    expires_at=None,
                    now=self.now(),
                ).plaintext
            uow.commit()
        return Seed(tasks=tuple(lead_of), lead_of=lead_of, keys=keys)

    def service(self, name: str, kind: str, env: Mapping[str, str] | None = None) -> ServiceProcess:
        """Define a service process (not started): kind is intake, tracker or notifier."""
        port = free_port()
        process = ServiceProcess(
            name=name,
            module=f"services.{kind}.main",
            port=port,
            env=self.env({"DUBAN_PORT": str(port), **(env or {})}),
            log_path=self.workdir / f"{name}.log",
        )
        self.services.append(process)
        return process

    def start_tracker(
        self, name: str = "tracker", env: Mapping[str, str] | None = None
    ) -> ServiceProcess:
        """Start a tracker replica and wait until its consumer runs."""
        tracker = self.service(name, "tracker", env)
        tracker.start()
        tracker.wait_ready()
        return tracker

    def start_intake(self, env: Mapping[str, str] | None = None) -> ServiceProcess:
        """Start intake once the directory is on the broker; wait until it has read it."""
        wait_until(
            lambda: self.outbox_backlog() == 0, timeout=60, what="directory relayed to the broker"
        )
        intake = self.service("intake", "intake", env)
        intake.start()
        intake.wait_ready()
        return intake

    def outbox_backlog(self) -> int:
        """Events the tracker has not relayed yet."""
        with UnitOfWork(self.session_factory) as uow:
            return int(
                uow.session.execute(
                    text("SELECT count(*) FROM tracker.outbox WHERE published_at IS NULL")
                ).scalar_one()
            )

    def close(self) -> None:
        """Stop every child still running, then drop the engine."""
        for service in reversed(self.services):
            service.stop()
        if self.engine is not None:
            self.engine.dispose()

    def logs(self) -> str:
        """Where the children's logs are."""
        return str(self.workdir)


def high_watermarks(bootstrap: str, topic: str, *, timeout: float = 30.0) -> dict[int, int]:
    """The end offset of every partition of a topic, as the broker's fetches report it.

    Tansu's ListOffsets answers with the last batch's base offset plus one, not the end, when
    that batch holds several records: `end_offsets` undercounts. A fetch's high watermark is
    right, so fetch the last batch of each partition and read it from there.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = wait_until(
            lambda: consumer.partitions_for_topic(topic), timeout=30, what=f"{topic} metadata"
        )
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        reported: dict[TopicPartition, int] = consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, max(0, reported[tp] - 1))
        deadline = time.monotonic() + timeout
        pending = [tp for tp in tps if reported[tp] > 0]
        while pending and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200)
            pending = [tp for tp in pending if consumer.highwater(tp) is None]
        if pending:
            raise AssertionError(f"no high watermark for {pending} after {timeout}s")
        return {tp.partition: max(reported[tp], consumer.highwater(tp) or 0) for tp in tps}
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, *, timeout: float = 60.0) -> list[Any]:
    """Every message on a topic, partition by partition, in offset order."""
    ends = high_watermarks(bootstrap, topic)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(ends)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        by_partition: dict[int, list[Any]] = {tp.partition: [] for tp in tps}
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp.partition] for tp in tps):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end in {timeout}s")
            for tp, messages in consumer.poll(timeout_ms=500).items():
                by_partition[tp.partition].extend(messages)
        return [m for p in sorted(by_partition) for m in by_partition[p]]
    finally:
        consumer.close()


def group_offsets(bootstrap: str, group: str, topic: str) -> dict[int, tuple[int, int]]:
    """Per partition of `topic`: (offset `group` committed, end offset); read without joining."""
    ends = high_watermarks(bootstrap, topic)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {
            p: (consumer.committed(TopicPartition(topic, p)) or 0, end) for p, end in ends.items()
        }
    finally:
        consumer.close(autocommit=False)


def group_lag(bootstrap: str, group: str, topic: str) -> int:
    """Messages on `topic` past the offsets `group` has committed."""
    offsets = group_offsets(bootstrap, group, topic)
    return sum(max(0, end - committed) for committed, end in offsets.values())
