"""Lists and details never disagree: for every role, the SQL filter a list uses and the
predicate a detail view uses admit the same tasks, on a catalog built to tell them apart."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from services.tracker import access
from services.tracker.api import create_app
from services.tracker.auth import Principal
from services.tracker.keys import create_key
from services.tracker.orm import Task, TaskUnit, Unit
from services.tracker.settings import TrackerSettings
from shared.clock import SHANGHAI, FixedClock
from shared.db import UnitOfWork, make_engine, make_session_factory
from shared.vocabulary import PrincipalRole

pytestmark = pytest.mark.integration

NOW = dt.datetime(2022, 5, 20, 10, 0, tzinfo=SHANGHAI)
UNITS = ("甲局", "乙局", "丙局", "丁局")
# code: (lead units, co-units, leaders). 丁局 holds no task; 赵 names none.
CATALOG: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "A-1": (("甲局",), ("乙局",), ("王",)),
    "A-2": (("乙局",), ("甲局",), ("李",)),
    "A-3": (("甲局", "乙局"), (), ("王", "李")),
    "A-4": (("丙局",), (), ()),
    "A-5": (("丙局",), ("甲局", "乙局"), ("张",)),
    "A-6": ((), (), ("王",)),
    "A-7": ((), ("丙局",), ("",)),
}
ROLES: dict[str, tuple[str, str | None, str | None]] = {
    # name: (role, unit, leader)
    "unit lead (甲局)": ("unit", "甲局", None),
    "unit co only (丙局)": ("unit", "丙局", None),
    "unit lead and co (乙局)": ("unit", "乙局", None),
    "unit unrelated (丁局)": ("unit", "丁局", None),
    "supervisor": ("supervisor", None, None),
    "leader with tasks (王)": ("leader", None, "王"),
    "leader with one task (张)": ("leader", None, "张"),
    "admin": ("admin", None, None),
    "operator": ("operator", None, None),
}


# What each role sees, spelled out, so the two sides cannot agree on a wrong answer.
EXPECTED = {
    "unit lead (甲局)": {"A-1", "A-2", "A-3", "A-5"},
    "unit co only (丙局)": {"A-4", "A-5", "A-7"},
    "unit lead and co (乙局)": {"A-1", "A-2", "A-3", "A-5"},
    "unit unrelated (丁局)": set(),
    "supervisor": set(CATALOG),
    "leader with tasks (王)": {"A-1", "A-3", "A-6"},
    "leader with one task (张)": {"A-5"},
    "admin": set(CATALOG),
    "operator": set(),
}


def _build(factory: sessionmaker[Session]) -> dict[str, int]:
    """The catalog; returns the unit ids by name."""
    with UnitOfWork(factory) as uow:
        db = uow.session
        units = {name: Unit(name=name, kind="agency") for name in UNITS}
        db.add_all(units.values())
        db.flush()
        for code, (lead, co, leaders) in CATALOG.items():
            task = Task(
                code=code,
                text=f"任务{code}",
                leaders=list(leaders),
                start_date=dt.date(2022, 1, 1),
                light="green",
                light_reasons=[],
                reported_periods=[],
            )
            roles = [(u, "lead") for u in lead] + [(u, "co") for u in co]
            task.assignments = [
                TaskUnit(unit_id=units[u].id, role=r, position=i) for i, (u, r) in enumerate(roles)
            ]
            db.add(task)
        uow.commit()
        return {name: unit.id for name, unit in units.items()}


@pytest.fixture
def factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.mark.parametrize("name", list(ROLES))
def test_the_list_filter_and_the_detail_predicate_agree(
    factory: sessionmaker[Session], name: str
) -> None:
    unit_ids = _build(factory)
    role, unit, leader = ROLES[name]
    who = Principal(
        key_id="k",
        role=PrincipalRole(role),
        unit=unit,
        unit_id=unit_ids[unit] if unit else None,
        leader=leader,
    )
    with UnitOfWork(factory) as uow:
        listed = set(
            uow.session.execute(select(Task.code).where(access.visible_tasks(who))).scalars()
        )
        every = uow.session.execute(select(Task)).scalars().all()
        seen = {task.code for task in every if access.may_see(who, task)}
        # A workflow role towards a task only where the task is visible.
        with_role = {task.code for task in every if access.role_towards(who, task) is not None}

    assert listed == seen == EXPECTED[name]
    assert with_role <= seen
    if role in ("unit", "supervisor", "leader"):
        assert with_role == seen


def test_the_task_routes_list_exactly_the_tasks_their_detail_shows(
    factory: sessionmaker[Session], database_url: str
) -> None:
    _build(factory)
    keys: dict[str, str] = {}
    with UnitOfWork(factory) as uow:
        for name, (role, unit, leader) in ROLES.items():
            keys[name] = create_key(
                uow.session,
                role=role,
                unit_name=unit,
                leader=leader,
                label="access",
                expires_at=None,
                now=NOW,
            ).plaintext
        uow.commit()
    settings = TrackerSettings(database_url=database_url, kafka_bootstrap_servers="127.0.0.1:9")
    app = create_app(settings, factory, FixedClock(NOW), run_workers=False)
    with TestClient(app) as client:
        for name, key in keys.items():
            headers = {"Authorization": f"Bearer {key}"}
            listing = client.get("/v1/tasks", params={"limit": 200}, headers=headers)
            details = {
                code: client.get(f"/v1/tasks/{code}", headers=headers).status_code
                for code in CATALOG
            }
            if ROLES[name][0] == "operator":
                assert listing.status_code == 403, listing.text
                assert set(details.values()) == {403}
                continue
            assert listing.status_code == 200, listing.text
            listed = {item["code"] for item in listing.json()["items"]}
            assert listing.json()["total"] == len(listed)
            shown = {code for code, status in details.items() if status == 200}
            assert set(details.values()) <= {200, 404}, (name, details)
            assert listed == shown == EXPECTED[name], name
