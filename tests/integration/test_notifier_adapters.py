"""The notifier's SQL adapters (adapters/sql.py) on the real database: what the fakes of the
unit tests cannot show — ON CONFLICT dedupe, SKIP LOCKED claims, advisory locks, the lease
guard — and that a listing's SQL filter and the detail predicate of access.py agree."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from services.notifier import access
from services.notifier.adapters.sql import SqlUnitOfWork
from services.notifier.orm import DigestRow
from services.notifier.refusals import Refused
from services.notifier.usecases import escalations
from services.notifier.usecases.ports import DigestRecord, NotificationRecord
from shared.db import make_engine, make_session_factory
from shared.events import ApiKeyPublished

from .test_notifier_support import OFFICE, sh

pytestmark = pytest.mark.integration

HOUSING, FINANCE, CIVIL = "市住房城乡建设委", "市财政局", "市民政局"


@pytest.fixture
def factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


def notification(
    recipient: str, *, channel: str = "inbox", level: int = 2, minute: int = 0, task: str = "T-A"
) -> NotificationRecord:
    return NotificationRecord(
        id=uuid.uuid4(),
        notification_id=uuid.uuid4(),
        task_codes=[task],
        level=level,
        level_name="督办",
        action="请说明",
        sequence=1,
        recipient_role="supervising_office" if recipient == OFFICE else "responsible_units",
        recipient=recipient,
        channel=channel,
        window_start=sh(7, 1, 0),
        respond_by=dt.date(2022, 7, 3),
        subject=f"督办 {task}",
        body="…",
        status="pending",
        attempts=0,
        last_error=None,
        digest_id=None,
        policy_fingerprint="f" * 64,
        created_at=sh(7, 1, 9, minute),
        delivered_at=None,
    )


def digest(recipient: str, *, minute: int = 0) -> DigestRecord:
    return DigestRecord(
        id=uuid.uuid4(),
        recipient_role="supervising_office" if recipient == OFFICE else "responsible_units",
        recipient=recipient,
        channel="webhook",
        window_start=sh(7, 1, 0),
        level=2,
        level_name="督办",
        task_codes=["T-A"],
        subject="督办",
        body="…",
        tasks={},
        status="sending",
        attempts=0,
        rounds=0,
        status_code=None,
        last_error=None,
        next_attempt_at=None,
        created_at=sh(7, 1, 9, minute),
        delivered_at=None,
        failed_at=None,
        lease_owner=None,
        leased_until=None,
    )


def test_planned_notifications_are_inserted_once(factory: sessionmaker[Session]) -> None:
    first = notification(OFFICE)
    # The same notification on the same channel under another id: the unique pair holds.
    twin = NotificationRecord(**{**first.__dict__, "id": uuid.uuid4()})
    with SqlUnitOfWork(factory) as uow:
        assert uow.notifications.add_new([first]) == [(first.id, 2)]
        uow.commit()
    with SqlUnitOfWork(factory) as uow:
        assert uow.notifications.add_new([first, twin]) == []
        uow.digests.add_new([d := digest(OFFICE)])
        uow.digests.add_new([d])
        uow.commit()
    with SqlUnitOfWork(factory) as uow:
        assert [r.id for r in uow.notifications.by_ids([first.id, twin.id])] == [first.id]
        assert uow.digests.get(d.id) == d


def test_unclaimed_notifications_are_claimed_skipping_locked_ones(
    factory: sessionmaker[Session],
) -> None:
    rows = [notification(OFFICE, minute=m) for m in range(4)]
    with SqlUnitOfWork(factory) as uow:
        uow.notifications.add_new(rows)
        uow.commit()
    with SqlUnitOfWork(factory) as first, SqlUnitOfWork(factory) as second:
        mine = first.notifications.unclaimed(2, now=sh(7, 1, 10))
        assert [r.id for r in mine] == [r.id for r in rows[:2]]
        # Another composer, while the first holds its rows, gets only the others.
        theirs = second.notifications.unclaimed(10, now=sh(7, 1, 10))
        assert [r.id for r in theirs] == [r.id for r in rows[2:]]


def test_a_notification_held_by_quiet_hours_is_unclaimed_only_from_its_time(
    factory: sessionmaker[Session],
) -> None:
    held = notification(OFFICE)
    held.not_before = sh(7, 4, 8, 30)
    with SqlUnitOfWork(factory) as uow:
        uow.notifications.add_new([held])
        uow.commit()
    with SqlUnitOfWork(factory) as uow:
        assert uow.notifications.unclaimed(10, now=sh(7, 4, 8, 29)) == []
        (stored,) = uow.notifications.by_ids([held.id])
        assert (stored.not_before, stored.held) == (sh(7, 4, 8, 30), True)
        assert [r.id for r in uow.notifications.unclaimed(10, now=sh(7, 4, 8, 30))] == [held.id]


def test_a_due_digest_is_locked_by_one_claimer_at_a_time(factory: sessionmaker[Session]) -> None:
    older, newer = digest(OFFICE, minute=0), digest(HOUSING, minute=1)
    with SqlUnitOfWork(factory) as uow:
        uow.digests.add_new([older, newer])
        uow.commit()
    now = sh(7, 1, 10)
    with SqlUnitOfWork(factory) as first, SqlUnitOfWork(factory) as second:
        a = first.digests.lock_next_due(now, first.database_now())
        b = second.digests.lock_next_due(now, second.database_now())
        assert (a and a.id, b and b.id) == (older.id, newer.id)


def test_the_lease_guard_lets_only_the_holder_record(factory: sessionmaker[Session]) -> None:
    row = digest(OFFICE)
    with SqlUnitOfWork(factory) as uow:
        uow.digests.add_new([row])
        uow.commit()
    with SqlUnitOfWork(factory) as uow:
        claimed = uow.digests.lock_next_due(sh(7, 1, 10), uow.database_now())
        assert claimed is not None
        claimed.lease_owner = "a/1"
        claimed.leased_until = uow.database_now() + dt.timedelta(minutes=5)
        uow.digests.save(claimed)
        uow.commit()
    with SqlUnitOfWork(factory) as uow:
        # Leased and running: not due, and only its owner finds it under the guard.
        assert uow.digests.lock_next_due(sh(7, 1, 10), uow.database_now()) is None
        assert uow.digests.lock_leased(row.id, "b/2") is None
        held = uow.digests.lock_leased(row.id, "a/1")
        assert held is not None and held.lease_owner == "a/1"
    with SqlUnitOfWork(factory) as uow:
        later = uow.database_now() + dt.timedelta(minutes=6)
        expired = uow.digests.lock_next_due(sh(7, 1, 10), later)
        assert expired is not None and expired.lease_owner == "a/1"


def test_the_advisory_locks_serialise_ticks_and_composers(factory: sessionmaker[Session]) -> None:
    with SqlUnitOfWork(factory) as first:
        assert first.locks.try_composing()
        first.locks.planning()
        with SqlUnitOfWork(factory) as second:
            assert not second.locks.try_composing()
            second.session.execute(text("SET LOCAL lock_timeout = '50ms'"))
            with pytest.raises(OperationalError, match="lock timeout"):
                second.locks.planning()
    # Transaction-scoped: gone with the first unit of work.
    with SqlUnitOfWork(factory) as third:
        assert third.locks.try_composing()
        third.locks.planning()


PRINCIPALS = [
    ApiKeyPublished(
        event_id=uuid.uuid4(),
        occurred_at=sh(1, 1),
        key_id=f"k{n}",
        key_hash="0" * 64,
        role=role,
        unit=unit,
        expires_at=None,
        revoked=False,
    )
    for n, (role, unit) in enumerate(
        [
            ("supervisor", None),
            ("admin", None),
            ("operator", None),
            ("leader", None),
            ("leader", "张副市长办公室"),
            ("unit", HOUSING),
            ("unit", FINANCE),
            ("unit", CIVIL),
            ("unit", None),
        ]
    )
]


@pytest.mark.parametrize("who", PRINCIPALS, ids=lambda w: f"{w.role}-{w.unit}")
def test_the_list_filter_and_the_detail_predicate_agree(
    factory: sessionmaker[Session], who: ApiKeyPublished
) -> None:
    recipients = [OFFICE, HOUSING, HOUSING, FINANCE, "市统计局"]
    notes = [notification(r, minute=m) for m, r in enumerate(recipients)]
    digests = [digest(r, minute=m) for m, r in enumerate(recipients)]
    with SqlUnitOfWork(factory) as uow:
        uow.notifications.add_new(notes)
        uow.digests.add_new(digests)
        uow.commit()

    scope = access.scope(who)
    with SqlUnitOfWork(factory) as uow:
        # The listing's SQL filter, through the use case every route calls.
        try:
            listed, total = escalations.list_notifications(uow, who=who, limit=200)
            listed_ids: set[uuid.UUID] | None = {r.id for r in listed}
            assert total == len(listed)
        except Refused as exc:
            assert exc.code == "key_without_unit"
            listed_ids = None
        # The detail predicate, row by row, and the digest detail use case.
        predicate = {r.id for r in notes if scope.sees(r.recipient)}
        shown: set[str] = set()
        for row in digests:
            try:
                shown.add(escalations.get_digest(uow, digest_id=row.id, who=who).recipient)
            except Refused as exc:
                assert exc.http_status == 404
        # The SQL filter alone, on the digests.
        filtered = set(
            uow.session.execute(
                select(DigestRow.recipient).where(scope.where(DigestRow.recipient))
            ).scalars()
        )

    if listed_ids is None:
        # A unit key bound to no unit: its listing is refused, and no detail is visible.
        assert who.unit is None and predicate == set()
    else:
        assert listed_ids == predicate
    assert shown == {r.recipient for r in digests if scope.sees(r.recipient)} == filtered
    if scope.everything:
        assert predicate == {r.id for r in notes}
    else:
        assert {r.recipient for r in notes if r.id in predicate} <= {who.unit}
