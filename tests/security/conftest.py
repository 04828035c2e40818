"""A stack with one key per role and relation, for the access and hostile-input tests.

Tasks (document `SEC2022`, year 2022, clock 2022-05-20):
  S-001: lead 市发展改革委, co 市统计局, leader 王卫东, due 2022-06-30 (not started)
  S-002: lead 市工业和信息化局, co 市通信管理局, leader 李明, due 2022-12-31 (not started)
  S-003: lead 市发展改革委, co 市统计局, leader 王卫东, due 2022-12-31 (closed in setup)
  S-004: lead 市政务服务办, co 市通信管理局, leader 李明, due 2022-12-31 (the harness's own key)
"""

from __future__ import annotations

import datetime as dt
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from devtools.servers import Broker, LocalPostgres, start_broker
from services.tracker.catalog.model import Deadline, ParsedDocument, ParsedTask
from services.tracker.keys import create_key, revoke_key
from services.tracker.orm import Task
from shared.apikeys import hash_key, issue_key
from shared.db import UnitOfWork
from shared.vocabulary import DeadlineKind
from tests.conftest import TEMPLATE
from tests.integration.stack import Stack, running_stack, wait_until

LEAD = "市发展改革委"
CO = "市统计局"
OTHER_LEAD = "市工业和信息化局"
OTHER_CO = "市通信管理局"
LEADER = "王卫东"
OTHER_LEADER = "李明"

OWN = "SEC2022-001"
OTHER = "SEC2022-002"
CLOSED = "SEC2022-003"
FOURTH = "SEC2022-004"
UNKNOWN = "SEC2099-999"


def security_document() -> ParsedDocument:
    """Four tasks, two leaders, three lead units (one leads two tasks)."""

    def task(n: int, lead: str, co: str, leader: str, due: dt.date) -> ParsedTask:
        return ParsedTask(
            code=f"SEC2022-{n:03d}",
            section="一、安全测试任务",
            item=str(n),
            text=f"安全测试任务{n}。",
            text_original=f"安全测试任务{n}。",
            lead_units=(lead,),
            co_units=(co,),
            leaders=(leader,),
            deadline=Deadline(text="年底前完成", kind=DeadlineKind.COMPLETE, due=due),
            milestones=(),
            targets=(),
            line=n,
        )

    return ParsedDocument(
        title="安全测试重点工作",
        year=2022,
        format="txt",
        code="SEC2022",
        kind="table",
        tasks=(
            task(1, LEAD, CO, LEADER, dt.date(2022, 6, 30)),
            task(2, OTHER_LEAD, OTHER_CO, OTHER_LEADER, dt.date(2022, 12, 31)),
            task(3, LEAD, CO, LEADER, dt.date(2022, 12, 31)),
            task(4, "市政务服务办", OTHER_CO, OTHER_LEADER, dt.date(2022, 12, 31)),
        ),
    )


@dataclass
class SecureStack:
    """The running stack plus a key for every caller the access rules distinguish."""

    stack: Stack
    keys: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)

    @property
    def tracker(self) -> TestClient:
        """The tracker's test client."""
        return self.stack.tracker

    @property
    def intake(self) -> TestClient:
        """Intake's test client."""
        return self.stack.intake

    @property
    def notifier(self) -> TestClient:
        """The notifier's test client."""
        return self.stack.notifier

    @property
    def session_factory(self) -> sessionmaker[Session]:
        """Sessions on the stack's database."""
        return self.stack.session_factory

    def auth(self, who: str) -> dict[str, str]:
        """The Authorization header of caller `who` (no header for `anonymous`)."""
        return {} if who == "anonymous" else {"Authorization": f"Bearer {self.keys[who]}"}

    def audit_rows(self, after_id: int, *, schema: str = "tracker") -> list[dict[str, Any]]:
        """Audit records of `schema`'s service written after `after_id`, oldest first."""
        with UnitOfWork(self.session_factory) as uow:
            rows = uow.session.execute(
                text(f"SELECT * FROM {schema}.audit_log WHERE id > :id ORDER BY id"),
                {"id": after_id},
            )
            return [dict(row._mapping) for row in rows]

    def last_audit_id(self, *, schema: str = "tracker") -> int:
        """Id of `schema`'s newest audit record (0 if none)."""
        with UnitOfWork(self.session_factory) as uow:
            return int(
                uow.session.execute(
                    text(f"SELECT coalesce(max(id), 0) FROM {schema}.audit_log")
                ).scalar_one()
            )


# Everything a request could change, except the audit log (which must grow) and the
# outbox's publication marks and directory refreshes (the relay's own bookkeeping).
SNAPSHOT_QUERIES = {
    table: f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
    for table in (
        "tracker.tasks",
        "tracker.task_units",
        "tracker.units",
        "tracker.reports",
        "tracker.milestones",
        "tracker.targets",
        "tracker.extension_decisions",
        "tracker.task_actions",
        "tracker.api_keys",
        "tracker.documents",
        "tracker.plan_goals",
    )
} | {
    "tracker.outbox(task events)": "SELECT count(*)::text FROM tracker.outbox "
    "WHERE topic <> 'tracker.directory'",
}


# What a notifier request could write (its notification log is the workers', not the API's).
NOTIFIER_SNAPSHOT_QUERIES = {
    table: f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
    for table in ("notifier.acknowledgements", "notifier.snoozes")
}


def snapshot(
    session_factory: sessionmaker[Session], queries: dict[str, str] = SNAPSHOT_QUERIES
) -> dict[str, str]:
    """A fingerprint of every table a request could write."""
    with UnitOfWork(session_factory) as uow:
        return {
            name: str(uow.session.execute(text(query)).scalar_one())
            for name, query in queries.items()
        }


def topic_size(bootstrap: str, topic: str) -> int:
    """Messages ever published to `topic` (the sum of its partitions' end offsets)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return int(sum(consumer.end_offsets(partitions).values()))
    finally:
        consumer.close()


def _settled(stack: Stack) -> bool:
    with UnitOfWork(stack.session_factory) as uow:
        unevaluated = uow.session.execute(
            select(Task.code).where(Task.light_changed_at.is_(None))
        ).first()
        backlog = uow.session.execute(
            text("SELECT count(*) FROM tracker.outbox WHERE published_at IS NULL")
        ).scalar_one()
    return unevaluated is None and backlog == 0


def add_keys(stack: Stack) -> tuple[dict[str, str], dict[str, str]]:
    """Issue the extra keys and wait until intake knows all of them."""
    now = stack.clock.now()
    keys: dict[str, str] = {}
    key_ids: dict[str, str] = {}
    with UnitOfWork(stack.session_factory) as uow:

        def issue(
            name: str,
            role: str,
            *,
            unit: str | None = None,
            leader: str | None = None,
            expires: dt.datetime | None = None,
        ) -> None:
            issued = create_key(
                uow.session,
                role=role,
                unit_name=unit,
                leader=leader,
                label=f"security {name}",
                expires_at=expires,
                now=now,
            )
            keys[name], key_ids[name] = issued.plaintext, issued.key_id

        issue("unit_lead", "unit", unit=LEAD)
        issue("unit_co", "unit", unit=CO)
        issue("other_unit", "unit", unit=OTHER_LEAD)
        issue("leader", "leader", leader=LEADER)
        issue("other_leader", "leader", leader=OTHER_LEADER)
        issue("supervisor", "supervisor")
        issue("admin", "admin")
        issue("operator", "operator")
        issue("expired", "unit", unit=LEAD, expires=now + dt.timedelta(seconds=1))
        issue("revoked", "unit", unit=LEAD)
        revoke_key(uow.session, key_id=key_ids["revoked"], now=now)
        uow.commit()
    never_stored = issue_key("unit")
    keys["unknown"] = never_stored.plaintext
    keys["malformed"] = "not-a-duban-key"
    keys["forged"] = keys["unit_lead"][:-6] + (
        "aaaaaa" if not keys["unit_lead"].endswith("aaaaaa") else "bbbbbb"
    )
    directory = stack.intake.app.state.directory  # type: ignore[attr-defined]
    wait_until(
        lambda: (
            all(
                directory.key(hash_key(keys[name])) is not None
                for name in ("unit_lead", "unit_co", "other_unit", "supervisor", "expired")
            )
            # A revocation is published as a tombstone: intake forgets the key.
            and directory.key(hash_key(keys["revoked"])) is None
        ),
        timeout=20,
        what="intake to learn the security keys",
    )
    # The expired key is expired from here on.
    stack.clock.advance(dt.timedelta(seconds=2))
    return keys, key_ids


@contextmanager
def secure_stack(database_url: str, bootstrap: str) -> Iterator[SecureStack]:
    """The security stack: catalog, keys, S-003 closed, background work settled."""
    with running_stack(database_url, bootstrap, document=security_document()) as stack:
        keys, key_ids = add_keys(stack)
        secured = SecureStack(stack=stack, keys=keys, key_ids=key_ids)
        lead = secured.auth("unit_lead")
        office = secured.auth("supervisor")
        response = stack.tracker.post(
            f"/v1/tasks/{CLOSED}/completion-requests", json={"summary": "已完成。"}, headers=lead
        )
        assert response.status_code == 200, response.text
        response = stack.tracker.post(f"/v1/tasks/{CLOSED}/close", json={}, headers=office)
        assert response.status_code == 200, response.text
        wait_until(lambda: _settled(stack), timeout=30, what="initial scan and outbox relay")
        yield secured


@pytest.fixture(scope="module")
def module_database_url(postgres: LocalPostgres) -> str:
    """A fresh, migrated database shared by one test module."""
    return postgres.create_database(f"s_{uuid.uuid4().hex[:12]}", template=TEMPLATE)


@pytest.fixture(scope="module")
def module_broker() -> Iterator[Broker]:
    """A Tansu broker shared by one test module."""
    log_dir = Path(tempfile.mkdtemp(prefix="duban-sec-broker-"))
    started = start_broker(log_path=log_dir / "tansu.log")
    yield started
    started.stop()


# Limits the rate-limit tests check on their own; elsewhere they must not get in the way.
GENEROUS_LIMITS = {"DUBAN_RATE_LIMIT_PER_MINUTE": "100000", "DUBAN_RATE_LIMIT_BURST": "10000"}


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables (read by the services' settings) for a while."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in values.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def secured(module_database_url: str, module_broker: Broker) -> Iterator[SecureStack]:
    """One security stack for a whole test module, with generous rate limits."""
    with (
        environment(GENEROUS_LIMITS),
        secure_stack(module_database_url, module_broker.bootstrap) as stack,
    ):
        yield stack


def _notifier_knows(secured: SecureStack) -> bool:
    directory = secured.notifier.app.state.workers.directory  # type: ignore[attr-defined]
    keys_known = all(
        directory.key(hash_key(secured.keys[name])) is not None
        for name in ("unit_lead", "unit_co", "other_unit", "leader", "supervisor", "admin")
    )
    # A revoked key is a tombstone on the directory topic: the notifier forgets it.
    revoked_forgotten = directory.key(hash_key(secured.keys["revoked"])) is None
    with UnitOfWork(secured.session_factory) as uow:
        conditions = uow.session.execute(
            text("SELECT count(*) FROM notifier.task_conditions WHERE task_code IN (:a, :b)"),
            {"a": OWN, "b": OTHER},
        ).scalar_one()
    return keys_known and revoked_forgotten and conditions == 2


@pytest.fixture(scope="module")
def notifier_secured(secured: SecureStack) -> SecureStack:
    """The security stack once the notifier knows its keys and the tasks' conditions."""
    wait_until(
        lambda: _notifier_knows(secured), timeout=30, what="the notifier to learn keys and tasks"
    )
    return secured
