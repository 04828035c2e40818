"""Two decisions on one task at once: the second waits, then decides on what the first left.

Each race is made real, not hoped for: the first request is held just before its decision
(its transaction open, everything it has read so far in hand) until the second has either
finished or is seen waiting for a lock in Postgres; only then does the first go on. Without
lock-then-decide the second finishes first and the first decides on a stale row.

The held request keeps what it loaded before its decision. The session's identity map holds
objects weakly, so whether that stale copy is still there when the decision selects the row
again otherwise depends on whether some code happens to refer to it; the rule must hold
either way, so the tests take the case where it is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from services.notifier.adapters.sql import SqlUnitOfWork as NotifierUnitOfWork
from services.notifier.escalation.policy import default_policy
from services.notifier.orm import AcknowledgementRow, NotificationRow
from services.notifier.refusals import Refused
from services.notifier.usecases import escalations, folding
from services.notifier.usecases.ports import AcknowledgementRecord
from services.tracker import importer, keys
from services.tracker.adapters.sql import SqlUnitOfWork
from services.tracker.api import create_app as create_tracker
from services.tracker.catalog.model import ParsedDocument
from services.tracker.orm import ExtensionDecision, OutboxMessage, Task
from services.tracker.routes import actions as action_routes
from services.tracker.routes import keys as key_routes
from services.tracker.settings import TrackerSettings
from services.tracker.usecases import workflow_actions as actions
from services.tracker.usecases.reports import apply_report
from shared import topics
from shared.clock import SHANGHAI, FixedClock
from shared.db import UnitOfWork, make_engine, make_session_factory
from shared.events import ApiKeyPublished, ProgressReport, ProgressReportSubmitted
from shared.kafka import MessagePosition, Outcome

from .stack import demo_document, seed, wait_until
from .test_notifier_support import condition

pytestmark = pytest.mark.integration

TASK = "T2022-001"  # lead 市发展改革委, co-unit 市统计局, due 2022-06-30
LEAD = "市发展改革委"
START = dt.datetime(2022, 5, 20, 10, 0, tzinfo=SHANGHAI)
WAIT = 30.0  # seconds; only ever reached if something hangs
# Where a workflow request loads its task before it decides (who may act, then the rules).
LOADED = (action_routes, "visible_task")

T = TypeVar("T")
U = TypeVar("U")


@dataclass
class Tracker:
    """The tracker's HTTP app (no background workers) on a seeded database."""

    app: FastAPI
    factory: sessionmaker[Session]
    keys: dict[str, str]

    def post(self, who: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """POST as `who` on a client of its own, so several threads can call at once."""
        response = TestClient(self.app).post(
            path, json=body or {}, headers={"Authorization": f"Bearer {self.keys[who]}"}
        )
        return response.status_code, response.json()

    def act(self, who: str, action: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """A workflow action on TASK."""
        return self.post(who, f"/v1/tasks/{TASK}/{action}", body)

    def scalar(self, query: str, **params: Any) -> Any:
        """One value, read in a transaction of its own."""
        with UnitOfWork(self.factory) as uow:
            return uow.session.execute(text(query), params).scalar_one()


@pytest.fixture
def tracker(database_url: str) -> Iterator[Tracker]:
    """The tracker over the demo catalog, clock at 2022-05-20."""
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    issued = seed(factory, demo_document(), now=START)
    with UnitOfWork(factory) as uow:
        admin = keys.create_key(
            uow.session, role="admin", unit_name=None, label="test", expires_at=None, now=START
        )
        uow.commit()
    issued["admin"] = admin.plaintext
    settings = TrackerSettings(database_url=database_url, kafka_bootstrap_servers="127.0.0.1:9")
    app = create_tracker(settings, factory, FixedClock(START), run_workers=False)
    with TestClient(app):
        yield Tracker(app=app, factory=factory, keys=issued)
    engine.dispose()


class Gate:
    """Holds the first call of `fn` until released; later calls go straight through."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.reached = threading.Event()
        self.release = threading.Event()
        self._taken = False
        self._mutex = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._mutex:
            first, self._taken = not self._taken, True
        if first:
            self.reached.set()
            if not self.release.wait(WAIT):
                raise AssertionError("the held request was never released")
        return self.fn(*args, **kwargs)


def waiting_for_a_lock(factory: sessionmaker[Session]) -> bool:
    """Whether some session on this database is waiting for a lock."""
    with UnitOfWork(factory) as uow:
        waiting = uow.session.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    return bool(waiting)


def race(
    tracker: Tracker,
    monkeypatch: pytest.MonkeyPatch,
    hold_at: tuple[object, str],
    first: Callable[[], T],
    second: Callable[[], U],
    *,
    keep: tuple[object, str] | None = None,
) -> tuple[T, U]:
    """Hold `first` at the call `hold_at` (module, name), run `second`, then release `first`.

    `second` runs until it is done or waits for a lock: by then it has read all it could.
    What the call `keep` (module, name) returns is kept referenced until the race is over.
    """
    module, name = hold_at
    gate = Gate(getattr(module, name))
    monkeypatch.setattr(module, name, gate)
    if keep is not None:
        # A session holds what it loaded weakly: whether a copy read before the decision is
        # still there when the decision loads the row again depends on whether any code still
        # refers to it. Here the request keeps what it loaded: the case that must be safe.
        kept: list[Any] = []
        found = getattr(keep[0], keep[1])

        def keeping(*args: Any, **kwargs: Any) -> Any:
            kept.append(found(*args, **kwargs))
            return kept[-1]

        monkeypatch.setattr(keep[0], keep[1], keeping)
    with ThreadPoolExecutor(max_workers=2) as pool:
        try:
            held = pool.submit(first)
            if not gate.reached.wait(WAIT):
                raise AssertionError(f"never reached {name}: {held.result(WAIT)}")
            racing = pool.submit(second)
            wait_until(
                lambda: racing.done() or waiting_for_a_lock(tracker.factory),
                timeout=WAIT,
                what="the second request to finish or wait for a lock",
            )
        finally:
            gate.release.set()
        return held.result(WAIT), racing.result(WAIT)


def task_events(tracker: Tracker, action: str) -> int:
    """`task.action_recorded` events for TASK in the outbox with this action."""
    with UnitOfWork(tracker.factory) as uow:
        payloads = uow.session.execute(
            select(OutboxMessage.payload).where(
                OutboxMessage.topic == topics.TASK_EVENTS, OutboxMessage.key == TASK
            )
        ).scalars()
        events = [json.loads(_not_tombstone(p)) for p in payloads]
    return sum(
        1 for e in events if e["event_type"] == "task.action_recorded" and e["action"] == action
    )


def timeline(tracker: Tracker) -> list[str]:
    response = TestClient(tracker.app).get(
        f"/v1/tasks/{TASK}/timeline",
        headers={"Authorization": f"Bearer {tracker.keys['supervisor']}"},
    )
    assert response.status_code == 200, response.text
    return [entry["kind"] for entry in response.json()["items"]]


def report(period: str, occurred_at: dt.datetime) -> ProgressReportSubmitted:
    return ProgressReportSubmitted(
        event_id=uuid.uuid4(),
        occurred_at=occurred_at,
        task_code=TASK,
        unit=LEAD,
        key_id="abcdefgh",
        report=ProgressReport(period=period, percent=40, summary=f"{period}进展。"),
    )


def applied(tracker: Tracker, event: ProgressReportSubmitted, offset: int) -> Outcome:
    """The report applied the way the consumer applies it: one transaction of its own."""
    with UnitOfWork(tracker.factory) as uow:
        outcome = apply_report(
            SqlUnitOfWork(uow.session),
            event,
            position=MessagePosition(topics.PROGRESS_REPORTS, 0, offset),
            now=START,
        )
        uow.commit()
    return outcome


def test_two_sign_offs_at_once_close_the_task_once(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, body = tracker.act(LEAD, "completion-requests", {"summary": "目标完成。"})
    assert code == 200, body

    def sign_off() -> tuple[int, Any]:
        return tracker.act("supervisor", "close", {"comment": "核验属实，予以销号。"})

    (first, first_body), (second, second_body) = race(
        tracker, monkeypatch, (actions, "load_for_action"), sign_off, sign_off, keep=LOADED
    )

    assert sorted((first, second)) == [200, 409], (first_body, second_body)
    refused = first_body if first == 409 else second_body
    assert refused["detail"]["code"] == "task_already_closed"
    assert timeline(tracker).count("closed") == 1
    assert task_events(tracker, "closed") == 1
    closes = tracker.scalar(
        "SELECT count(*) FROM tracker.audit_log WHERE action = 'close' AND status = 200"
    )
    assert closes == 1


def test_a_return_racing_a_late_report_keeps_that_reports_period(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The April report is the latest; the March one, filed a day earlier, arrives late.
    april = report("2022-04", START - dt.timedelta(hours=1))
    march = report("2022-03", START - dt.timedelta(days=1))
    assert applied(tracker, april, offset=0) is Outcome.APPLIED

    def give_back() -> tuple[int, Any]:
        return tracker.act(
            "supervisor", "returns", {"event_id": str(april.event_id), "comment": "请补充数据。"}
        )

    (code, body), outcome = race(
        tracker,
        monkeypatch,
        (actions, "load_for_action"),
        give_back,
        lambda: applied(tracker, march, offset=1),
        keep=LOADED,
    )

    assert code == 200, body
    assert outcome is Outcome.APPLIED
    # April is owed again; March, applied while the return was being decided, stays reported.
    periods = tracker.scalar("SELECT reported_periods FROM tracker.tasks WHERE code = :c", c=TASK)
    assert periods == ["2022-03"]


def test_an_extension_granted_and_refused_at_once_is_decided_once(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, body = tracker.act(
        LEAD, "extension-requests", {"new_due": "2022-09-30", "reason": "项目开工推迟。"}
    )
    assert code == 200, body

    (granted, granted_body), (refused, refused_body) = race(
        tracker,
        monkeypatch,
        (actions, "load_for_action"),
        lambda: tracker.act("supervisor", "extension-requests/grant", {"comment": "同意。"}),
        lambda: tracker.act("supervisor", "extension-requests/refuse", {"comment": "不同意。"}),
        keep=LOADED,
    )

    # The grant was held with its transaction open, so the refusal waited and then found
    # nothing left to decide.
    assert (granted, refused) == (200, 409), (granted_body, refused_body)
    assert refused_body["detail"]["code"] == "no_pending_extension"
    with UnitOfWork(tracker.factory) as uow:
        decisions = uow.session.execute(select(ExtensionDecision.outcome)).scalars().all()
        task = uow.session.execute(select(Task).where(Task.code == TASK)).scalar_one()
        assert decisions == ["granted"]
        assert (task.extended_due_date, task.pending_extension_due) == (dt.date(2022, 9, 30), None)
    assert task_events(tracker, "extension_granted") == 1
    assert task_events(tracker, "extension_refused") == 0


def test_two_revocations_at_once_revoke_and_announce_once(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    with UnitOfWork(tracker.factory) as uow:
        key_id = keys.create_key(
            uow.session, role="unit", unit_name=LEAD, label="x", expires_at=None, now=START
        ).key_id
        uow.commit()
    announced = "SELECT count(*) FROM tracker.outbox WHERE key = :k"
    before = tracker.scalar(announced, k=f"key:{key_id}")

    def revoke() -> tuple[int, Any]:
        return tracker.post("admin", f"/v1/keys/{key_id}/revoke")

    (first, _), (second, _) = race(tracker, monkeypatch, (key_routes, "revoke_key"), revoke, revoke)

    assert (first, second) == (200, 200)
    assert tracker.scalar(announced, k=f"key:{key_id}") == before + 1
    with UnitOfWork(tracker.factory) as uow:
        already = uow.session.execute(
            text(
                "SELECT details->>'already_revoked' FROM tracker.audit_log "
                "WHERE action = 'revoke' ORDER BY id"
            )
        ).scalars()
        assert sorted(already) == ["false", "true"]


def imported(tracker: Tracker, document: ParsedDocument) -> importer.ImportResult:
    """The document imported the way the API and the CLI import it: one transaction."""
    with UnitOfWork(tracker.factory) as uow:
        result = importer.import_document(uow.session, document, now=START)
        uow.commit()
    return result


def test_the_same_document_imported_twice_at_once_is_stored_once(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = demo_document()
    document = dataclasses.replace(
        demo,
        code="N2022",
        tasks=tuple(
            dataclasses.replace(t, code=t.code.replace("T2022", "N2022"), lead_units=("市新设局",))
            for t in demo.tasks
        ),
    )

    first, second = race(
        tracker,
        monkeypatch,
        (importer, "diff_catalog"),
        lambda: imported(tracker, document),
        lambda: imported(tracker, document),
    )

    assert (len(first.added), first.units_created) == (3, ["市新设局"])
    # The second waited for the first, then found every task already there.
    assert (second.added, len(second.unchanged), second.units_created) == ([], 3, [])
    assert tracker.scalar("SELECT count(*) FROM tracker.tasks WHERE code LIKE 'N2022-%'") == 3


def test_an_import_racing_a_completion_request_announces_the_current_status(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = demo_document()
    revised = dataclasses.replace(
        demo,
        tasks=tuple(
            dataclasses.replace(t, text=t.text + "（修订）") if t.code == TASK else t
            for t in demo.tasks
        ),
    )

    result, (code, body) = race(
        tracker,
        monkeypatch,
        (importer, "diff_catalog"),
        lambda: imported(tracker, revised),
        lambda: tracker.act(LEAD, "completion-requests", {"summary": "目标完成。"}),
    )

    assert [changed for changed, _ in result.changed] == [TASK]
    assert code == 200, body
    # Intake reads the last directory entry: a task awaiting sign-off takes no more reports.
    with UnitOfWork(tracker.factory) as uow:
        last = uow.session.execute(
            select(OutboxMessage.payload)
            .where(OutboxMessage.topic == topics.DIRECTORY, OutboxMessage.key == f"task:{TASK}")
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        ).scalar_one()
    assert json.loads(_not_tombstone(last))["accepting_reports"] is False
    assert tracker.scalar("SELECT status FROM tracker.tasks WHERE code = :c", c=TASK) == (
        "completion_requested"
    )


def test_an_acknowledgement_decides_on_the_units_a_concurrent_task_event_sets(
    database_url: str,
) -> None:
    housing, civil = "市住房城乡建设委", "市民政局"
    at = dt.datetime(2022, 7, 1, 9, 0, tzinfo=SHANGHAI)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    policy = default_policy()
    with NotifierUnitOfWork(factory) as uow:
        folding.apply_task_event(
            uow,
            condition("T-A", at=at, light="red", red_since=at, lead=housing),
            position=MessagePosition(topics.TASK_EVENTS, 0, 0),
        )
        uow.session.add(
            NotificationRow(
                id=uuid.uuid4(),
                notification_id=uuid.uuid4(),
                task_codes=["T-A"],
                level=2,
                level_name=policy.level(2).name,
                action="请说明情况",
                sequence=1,
                recipient_role="lead_units",
                recipient=housing,
                channel="inbox",
                window_start=at,
                subject="督办",
                body="督办",
                status="delivered",
                attempts=1,
                created_at=at,
                delivered_at=at,
            )
        )
        uow.commit()
    unit_key = ApiKeyPublished(
        event_id=uuid.uuid4(),
        occurred_at=at,
        key_id="abcdefgh",
        key_hash="0" * 64,
        role="unit",
        unit=housing,
        expires_at=None,
        revoked=False,
    )

    def acknowledge() -> AcknowledgementRecord:
        with NotifierUnitOfWork(factory) as uow:
            ack = escalations.acknowledge(
                uow,
                task_code="T-A",
                level=2,
                note=None,
                who=unit_key,
                policy=policy,
                now=at + dt.timedelta(hours=2),
            )
            uow.commit()
        return ack

    # The task passes to another unit: its event is being folded, not yet committed.
    with NotifierUnitOfWork(factory) as fold, ThreadPoolExecutor(max_workers=1) as pool:
        folding.apply_task_event(
            fold,
            condition("T-A", at=at + dt.timedelta(hours=1), light="red", lead=civil, co=()),
            position=MessagePosition(topics.TASK_EVENTS, 0, 1),
        )
        signing = pool.submit(acknowledge)
        wait_until(
            lambda: signing.done() or waiting_for_a_lock(factory),
            timeout=WAIT,
            what="the 签收 to finish or wait for a lock",
        )
        fold.commit()
        with pytest.raises(Refused) as refused:
            signing.result(WAIT)

    assert refused.value.code == "not_responsible"
    with UnitOfWork(factory) as check:
        assert check.session.execute(select(AcknowledgementRow)).first() is None
    engine.dispose()


def _not_tombstone(payload: bytes | None) -> bytes:
    """The payload of an outbox row that must carry a value (only deletions are null)."""
    assert payload is not None, "unexpected tombstone"
    return payload
