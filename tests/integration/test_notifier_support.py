"""Helpers shared by the notifier integration tests (this module holds no tests).

A notifier runs in-process on a real broker and a real database with a `FixedClock`; tests
publish `TaskConditionChanged` events (and the directory's API keys) to the real topics the
way the tracker would, then drive escalation by setting the clock and calling the tick.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from kafka import KafkaProducer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from services.notifier.api import create_app
from services.notifier.channels.base import Channel
from services.notifier.escalation.policy import DEFAULT_POLICY_PATH, LOCAL_POLICY_PATH, ChannelKind
from services.notifier.orm import DigestRow, NotificationRow, TaskConditionRow
from services.notifier.settings import NotifierSettings
from services.notifier.usecases.ports import SENDING
from services.notifier.usecases.tick import TickResult
from services.notifier.workers import NotifierWorkers
from shared import topics
from shared.apikeys import issue_key
from shared.clock import SHANGHAI, FixedClock
from shared.db import UnitOfWork
from shared.events import ApiKeyPublished, TaskConditionChanged, encode
from shared.kafka import ensure_topics
from tests.policy_text import without_quiet_hours

from .stack import FAST, wait_until

OFFICE = "市政府办公厅督查室"
UNITS = ("市住房城乡建设委", "市财政局", "市民政局", "市发展改革委", "市统计局", "市交通运输委")


def sh(month: int, day: int, hour: int = 9, minute: int = 0, second: int = 0) -> dt.datetime:
    """An Asia/Shanghai wall-clock instant in 2022."""
    return dt.datetime(2022, month, day, hour, minute, second, tzinfo=SHANGHAI)


def notifier_settings(database_url: str, bootstrap: str, **overrides: Any) -> NotifierSettings:
    """Settings for a test notifier: fast group joins, quick retries, ticks only when called."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": bootstrap,
        **FAST,
        "escalation_interval_seconds": 3600,
        "escalate_on_event": False,
        "dispatch_poll_seconds": 0.05,
        "delivery_attempts": 2,
        "delivery_initial_wait_seconds": 0.01,
        "delivery_max_wait_seconds": 0.02,
        "delivery_jitter_seconds": 0.0,
        "http_timeout_seconds": 2.0,
    }
    values.update(overrides)
    return NotifierSettings(**values)


def publish_keys(settings: NotifierSettings, units: tuple[str, ...] = UNITS) -> dict[str, str]:
    """Publish API keys to the directory topic as the tracker does; returns the plaintexts."""
    ensure_topics(settings, topics.ALL)
    keys: dict[str, str] = {}
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    scopes: list[tuple[str, str | None, str]] = [(unit, unit, "unit") for unit in units]
    scopes += [("supervisor", None, "supervisor"), ("operator", None, "operator")]
    for name, unit, role in scopes:
        issued = issue_key(role)
        keys[name] = issued.plaintext
        event = ApiKeyPublished(
            event_id=uuid.uuid4(),
            occurred_at=sh(1, 1),
            key_id=issued.key_id,
            key_hash=issued.key_hash,
            role=role,
            unit=unit,
            expires_at=None,
            revoked=False,
        )
        producer.send(topics.DIRECTORY, key=f"key:{issued.key_id}".encode(), value=encode(event))
    producer.flush()
    producer.close()
    return keys


def condition(
    code: str,
    *,
    at: dt.datetime,
    light: str,
    lead: str = "市住房城乡建设委",
    co: tuple[str, ...] = ("市财政局",),
    leaders: tuple[str, ...] = ("张副市长",),
    title: str = "推进老旧小区改造",
    status: str = "in_progress",
    light_since: dt.datetime | None = None,
    red_since: dt.datetime | None = None,
    due: dt.date | None = dt.date(2022, 6, 30),
    original_due: dt.date | None = None,
    report_due_at: dt.datetime | None = None,
    last_report_at: dt.datetime | None = None,
    reasons: tuple[str, ...] = (),
) -> TaskConditionChanged:
    """A task event as the tracker emits it at `at`."""
    return TaskConditionChanged(
        event_id=uuid.uuid4(),
        occurred_at=at,
        task_code=code,
        title=title,
        section="一、测试任务",
        light=light,
        previous_light=None,
        light_since=light_since or at,
        reasons=list(reasons),
        status=status,
        due=due,
        original_due=original_due or due,
        days_overdue=0,
        red_since=red_since,
        report_due_at=report_due_at,
        last_report_at=last_report_at,
        lead_units=[lead],
        co_units=list(co),
        leaders=list(leaders),
    )


def publish_events(bootstrap: str, *events: TaskConditionChanged) -> None:
    """Publish task events to the task-events topic, keyed by task, and wait for the acks."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for event in events:
        producer.send(topics.TASK_EVENTS, key=event.task_code.encode(), value=encode(event))
    producer.flush()
    producer.close()


def any_hour_policy(directory: Path) -> Path:
    """The local policy (every recipient on the inbox) without quiet hours, as a file: for
    tests that walk the ladder day by day across weekends (quiet hours have their own)."""
    path = directory / "any-hour-policy.yaml"
    text = without_quiet_hours(LOCAL_POLICY_PATH.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    return path


def write_policy(
    path: Path, *, channels: Mapping[str, str], quiet_hours: bool = True, **replacements: str
) -> Path:
    """The shipped default policy with each role's channels replaced (`role: "[webhook]"`);
    `quiet_hours=False` drops its quiet hours (every level at any hour)."""
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    lines = (text if quiet_hours else without_quiet_hours(text)).splitlines()
    out: list[str] = []
    role = ""
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("- role:"):
            role = stripped.split(":", 1)[1].strip()
        if stripped.startswith("channels:") and role in channels:
            line = line[: line.index("channels:")] + f"channels: {channels[role]}"
        out.append(line)
    text = "\n".join(out) + "\n"
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Notifier:
    """A running notifier with its clock, workers, API client and keys."""

    clock: FixedClock
    client: TestClient
    workers: NotifierWorkers
    session_factory: sessionmaker[Session]
    keys: dict[str, str]
    bootstrap: str
    published: list[TaskConditionChanged] = field(default_factory=list)

    def headers(self, who: str = "supervisor") -> dict[str, str]:
        """Bearer header for a unit's, the office's or the operator's key."""
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def get(self, path: str, who: str = "supervisor", **params: Any) -> Any:
        """GET expecting 200; returns the JSON body."""
        response = self.client.get(path, params=params, headers=self.headers(who))
        assert response.status_code == 200, response.text
        return response.json()

    def notifications(self, who: str = "supervisor", **filters: Any) -> list[dict[str, Any]]:
        """Every notification the caller may see, through the API, oldest first."""
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self.get("/v1/notifications", who, limit=200, offset=offset, **filters)
            items += page["items"]
            offset += len(page["items"])
            if offset >= page["total"] or not page["items"]:
                return list(reversed(items))

    def publish(self, *events: TaskConditionChanged) -> None:
        """Publish events and wait until the notifier has folded each of them."""
        publish_events(self.bootstrap, *events)
        self.published += events

        def folded() -> bool:
            with UnitOfWork(self.session_factory) as uow:
                for event in events:
                    row = uow.session.get(TaskConditionRow, event.task_code)
                    if row is None or row.occurred_at != event.occurred_at:
                        return False
            return True

        wait_until(folded, what="events folded by the notifier")

    def at(self, instant: dt.datetime) -> TickResult:
        """Set the clock, run one tick, and wait until every due delivery is settled."""
        self.clock.set(instant)
        result = self.workers.tick()
        self.settle()
        return result

    def outstanding(self) -> int:
        """Notifications due and still pending plus digests due for a delivery round."""
        now = self.clock.now()
        with UnitOfWork(self.session_factory) as uow:
            # A notice held by quiet hours past `now` is not due: the dispatcher leaves it.
            pending = uow.session.execute(
                select(NotificationRow.id).where(
                    NotificationRow.status == "pending",
                    NotificationRow.digest_id.is_(None),
                    NotificationRow.not_before.is_(None) | (NotificationRow.not_before <= now),
                )
            ).all()
            due = uow.session.execute(
                select(DigestRow.id).where(
                    DigestRow.status == SENDING,
                    (DigestRow.next_attempt_at.is_(None)) | (DigestRow.next_attempt_at <= now),
                )
            ).all()
        return len(pending) + len(due)

    def settle(self) -> None:
        """Wait until the dispatcher has nothing left that is due."""
        self.workers.wake_dispatcher()
        wait_until(lambda: self.outstanding() == 0, what="dispatcher idle")


@contextmanager
def running_notifier(
    settings: NotifierSettings,
    *,
    start: dt.datetime,
    keys: dict[str, str] | None = None,
    channels: Mapping[ChannelKind, Channel] | None = None,
    clock: FixedClock | None = None,
) -> Iterator[Notifier]:
    """Run a notifier app (consumer, directory, scheduler, dispatcher) until the block ends."""
    from shared.db import make_engine, make_session_factory

    keys = keys if keys is not None else publish_keys(settings)
    clock = clock or FixedClock(start)
    engine = make_engine(settings.sqlalchemy_url)
    factory = make_session_factory(engine)
    app = create_app(settings, factory, clock, channels=channels)
    try:
        with TestClient(app) as client:
            workers: NotifierWorkers = app.state.workers
            wait_until(
                lambda: len(workers.directory.keys) >= len(keys),
                what="API keys loaded from the directory",
            )
            yield Notifier(clock, client, workers, factory, keys, settings.kafka_bootstrap_servers)
    finally:
        engine.dispose()


def rows_by_digest(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Notifications grouped by the digest that carried them."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(str(row["digest_id"]), []).append(row)
    return grouped


def shape(rows: list[dict[str, Any]]) -> set[tuple[int, str, str, str]]:
    """Rows as (level, recipient role, recipient, task) for exact comparisons."""
    return {
        (row["level"], row["recipient_role"], row["recipient"], code)
        for row in rows
        for code in row["task_codes"]
    }
