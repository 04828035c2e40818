"""The three services in one test process, on a real broker and a real database."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from services.intake.api import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.notifier.api import create_app as create_notifier
from services.notifier.settings import NotifierSettings
from services.tracker.api import create_app as create_tracker
from services.tracker.catalog.model import (
    Deadline,
    Milestone,
    ParsedDocument,
    ParsedTask,
)
from services.tracker.importer import import_document
from services.tracker.keys import create_key
from services.tracker.settings import TrackerSettings
from services.tracker.workers import scan_once
from shared.clock import SHANGHAI, FixedClock
from shared.db import UnitOfWork, make_engine, make_session_factory
from shared.vocabulary import Cadence, DeadlineKind

T = TypeVar("T")

FAST = {
    "consumer_session_timeout_ms": 6000,
    "consumer_heartbeat_interval_ms": 1000,
}


def wait_until(probe: Callable[[], T | None], *, timeout: float = 30.0, what: str = "") -> T:
    """Poll `probe` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}")
        time.sleep(0.1)


def demo_document() -> ParsedDocument:
    """A small catalog: three tasks, two units each, one with milestones."""

    def task(
        n: int,
        text: str,
        lead: str,
        co: str,
        due: dt.date | None,
        kind: DeadlineKind,
        milestones: tuple[Milestone, ...] = (),
    ) -> ParsedTask:
        return ParsedTask(
            code=f"T2022-{n:03d}",
            section="一、测试任务",
            item=str(n),
            text=text,
            text_original=text,
            lead_units=(lead,),
            co_units=(co,),
            leaders=("王卫东",),
            deadline=Deadline(
                text="年底前完成" if due else "年内持续推进",
                kind=kind,
                due=due,
                cadence=None if due else Cadence.MONTHLY,
                summary_due=None if due else dt.date(2022, 12, 31),
            ),
            milestones=milestones,
            targets=(),
            line=n,
        )

    return ParsedDocument(
        title="测试重点工作",
        year=2022,
        format="txt",
        code="T2022",
        kind="table",
        tasks=(
            task(
                1,
                "地区生产总值增长5%以上。",
                "市发展改革委",
                "市统计局",
                dt.date(2022, 6, 30),
                DeadlineKind.COMPLETE,
            ),
            task(
                2,
                "新建5G基站1万个。",
                "市工业和信息化局",
                "市通信管理局",
                dt.date(2022, 12, 31),
                DeadlineKind.COMPLETE,
            ),
            task(
                3,
                "持续优化营商环境。",
                "市政务服务办",
                "市发展改革委",
                None,
                DeadlineKind.CONTINUOUS,
            ),
        ),
    )


@dataclass
class Stack:
    """Handles on the running services and their shared clock and database."""

    clock: FixedClock
    session_factory: sessionmaker[Session]
    intake: TestClient
    tracker: TestClient
    notifier: TestClient
    keys: dict[str, str] = field(default_factory=dict)
    tracker_settings: TrackerSettings | None = None

    def report(
        self, unit: str, task: str, *, idempotency_key: str | None = None, **fields: object
    ) -> tuple[int, dict[str, Any]]:
        """Submit a report as `unit`; returns (status, body)."""
        body = {"task_code": task, "percent": 50, "summary": "按计划推进。", **fields}
        headers = {"Authorization": f"Bearer {self.keys[unit]}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        response = self.intake.post("/v1/reports", json=body, headers=headers)
        return response.status_code, response.json()

    def task(self, code: str) -> dict[str, Any]:
        """The tracker's view of a task (as the supervisor)."""
        response = self.tracker.get(
            f"/v1/tasks/{code}", headers={"Authorization": f"Bearer {self.keys['supervisor']}"}
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def scan(self) -> int:
        """Run one overdue scan tick now, at the stack's clock."""
        assert self.tracker_settings is not None
        return scan_once(self.session_factory, now=self.clock.now(), batch_size=100)


def seed(
    factory: sessionmaker[Session], document: ParsedDocument, *, now: dt.datetime
) -> dict[str, str]:
    """Import `document` and issue a key per unit and one for the office; returns the keys."""
    keys: dict[str, str] = {}
    with UnitOfWork(factory) as uow:
        import_document(uow.session, document, now=now)
        uow.session.flush()
        for unit in ("市发展改革委", "市工业和信息化局", "市统计局", "市政务服务办"):
            keys[unit] = create_key(
                uow.session, role="unit", unit_name=unit, label="test", expires_at=None, now=now
            ).plaintext
        keys["supervisor"] = create_key(
            uow.session, role="supervisor", unit_name=None, label="test", expires_at=None, now=now
        ).plaintext
        uow.commit()
    return keys


@contextmanager
def running_stack(
    database_url: str,
    bootstrap: str,
    *,
    start: dt.datetime = dt.datetime(2022, 5, 20, 10, 0, tzinfo=SHANGHAI),
    document: ParsedDocument | None = None,
    tracker_options: dict[str, Any] | None = None,
) -> Iterator[Stack]:
    """Seed a catalog and keys, then run tracker, intake and notifier against them.

    `tracker_options` are further TrackerSettings (e.g. a supervision_policy file).
    """
    common: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": bootstrap,
        **FAST,
    }
    tracker_settings = TrackerSettings(
        **common,
        scan_interval_seconds=3600,
        outbox_poll_seconds=0.05,
        **(tracker_options or {}),
    )
    clock = FixedClock(start)
    factory = make_session_factory(make_engine(database_url))
    keys = seed(factory, document or demo_document(), now=clock.now())
    with ExitStack() as stack:
        tracker = stack.enter_context(TestClient(create_tracker(tracker_settings, factory, clock)))
        intake = stack.enter_context(TestClient(create_intake(IntakeSettings(**common), clock)))
        notifier = stack.enter_context(
            TestClient(
                create_notifier(
                    NotifierSettings(**common, escalation_interval_seconds=3600),
                    factory,
                    clock,
                )
            )
        )
        wait_until(lambda: intake.get("/readyz").status_code == 200, what="intake ready")
        yield Stack(
            clock=clock,
            session_factory=factory,
            intake=intake,
            tracker=tracker,
            notifier=notifier,
            keys=keys,
            tracker_settings=tracker_settings,
        )
