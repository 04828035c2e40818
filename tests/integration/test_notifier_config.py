"""The policy and contacts files: refused at start-up when malformed, reloaded when edited."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from services.notifier.adapters.sql import SqlUnitOfWork
from services.notifier.api import create_app
from services.notifier.escalation.contacts import ContactsError
from services.notifier.escalation.policy import LOCAL_POLICY_PATH, PolicyError
from services.notifier.orm import NotificationRow
from services.notifier.settings import NotifierSettings
from services.notifier.usecases.folding import apply_task_event
from services.notifier.workers import NotifierWorkers
from shared.clock import FixedClock
from shared.db import UnitOfWork, make_engine, make_session_factory
from shared.events import TaskConditionChanged
from shared.kafka import MessagePosition
from tests.policy_text import without_quiet_hours

from .test_notifier_support import condition, sh

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE: dict[str, Any] = {
    "database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none",
    "kafka_bootstrap_servers": "127.0.0.1:1",
}


def bad_policy(tmp_path: Path) -> tuple[Path, int]:
    """The local policy with an unknown channel on a known line."""
    lines = LOCAL_POLICY_PATH.read_text(encoding="utf-8").splitlines()
    line = next(i for i, text in enumerate(lines) if "channels: [inbox]" in text)
    lines[line] = lines[line].replace("[inbox]", "[inbox, fax]")
    path = tmp_path / "policy.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, line + 1


def test_malformed_policy_refuses_to_build_the_app(tmp_path: Path) -> None:
    path, line = bad_policy(tmp_path)
    settings = NotifierSettings(**UNREACHABLE, policy_path=path)
    factory = make_session_factory(make_engine(settings.sqlalchemy_url))
    with pytest.raises(PolicyError) as error:
        create_app(settings, factory, FixedClock(sh(7, 1)))
    assert error.value.line == line
    assert f"{path}:{line}:" in str(error.value)
    assert "channels[1]" in str(error.value)


def test_malformed_contacts_refuse_to_build_the_app(tmp_path: Path) -> None:
    contacts = tmp_path / "contacts.yaml"
    contacts.write_text(
        "contacts:\n  - name: 市财政局\n    email: not-an-address\n", encoding="utf-8"
    )
    settings = NotifierSettings(**UNREACHABLE, contacts_path=contacts)
    factory = make_session_factory(make_engine(settings.sqlalchemy_url))
    with pytest.raises(ContactsError) as error:
        create_app(settings, factory, FixedClock(sh(7, 1)))
    assert f"{contacts}:3:" in str(error.value)


def test_the_service_process_refuses_to_start_naming_the_line(tmp_path: Path) -> None:
    path, line = bad_policy(tmp_path)
    env = {
        **os.environ,
        "DUBAN_POLICY_PATH": str(path),
        "DATABASE_URL": UNREACHABLE["database_url"],
        "KAFKA_BOOTSTRAP_SERVERS": UNREACHABLE["kafka_bootstrap_servers"],
        "DUBAN_LOG_FORMAT": "json",
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.notifier.main"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "拒绝启动" in done.stderr
    assert f"{path}:{line}:" in done.stderr


def fold(factory: sessionmaker[Session], *events: TaskConditionChanged) -> None:
    with SqlUnitOfWork(factory) as uow:
        for offset, event in enumerate(events):
            apply_task_event(uow, event, position=MessagePosition("test", 0, offset))
        uow.commit()


def test_policy_edits_are_picked_up_and_bad_edits_are_refused(
    database_url: str, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    # Repeats counted day by day across a weekend: the ladder at any hour.
    original = without_quiet_hours(LOCAL_POLICY_PATH.read_text(encoding="utf-8"))
    policy.write_text(original, encoding="utf-8")
    settings = NotifierSettings(database_url=database_url, policy_path=policy)
    clock = FixedClock(sh(7, 1, 9))
    factory = make_session_factory(make_engine(database_url))
    workers = NotifierWorkers(settings, factory, clock)
    fold(factory, condition("T-A", at=sh(7, 1, 0, 0, 5), light="red", red_since=sh(7, 1, 0, 0)))

    def levels_sent() -> list[tuple[int, str]]:
        with UnitOfWork(factory) as uow:
            rows = uow.session.execute(
                select(NotificationRow.level, NotificationRow.recipient).order_by(
                    NotificationRow.created_at, NotificationRow.recipient
                )
            ).all()
        return [(level, name) for level, name in rows]

    workers.tick()
    assert len(levels_sent()) == 2
    clock.set(sh(7, 2, 9))
    assert workers.tick().inserted == 0  # repeats every three days

    # A bad edit is refused and counted; the policy in force stays in force.
    rejected = REGISTRY.get_sample_value(
        "duban_notifier_config_reloads_total", {"file": "policy", "outcome": "rejected"}
    )
    before = workers.policy.fingerprint
    policy.write_text(original.replace("repeat_every_days: 3", "repeat_every_days: 0"), "utf-8")
    assert workers.reload_config() is False
    assert workers.policy.fingerprint == before
    after = REGISTRY.get_sample_value(
        "duban_notifier_config_reloads_total", {"file": "policy", "outcome": "rejected"}
    )
    assert after == (rejected or 0.0) + 1

    # A good edit (repeat every day) applies, and the next tick follows it.
    policy.write_text(original.replace("repeat_every_days: 3", "repeat_every_days: 1"), "utf-8")
    os.utime(policy, ns=(1, 1_000_000_000_000))  # a different stamp whatever the clock's grain
    assert workers.reload_config() is True
    assert workers.policy.fingerprint != before
    assert workers.tick().inserted == 2
    assert [name for _, name in levels_sent()[2:]] == ["市住房城乡建设委", "市政府办公厅督查室"]
    assert workers.reload_config() is False  # unchanged file: nothing to do


def test_a_role_that_names_nobody_is_counted_once_per_window(database_url: str) -> None:
    settings = NotifierSettings(database_url=database_url)
    clock = FixedClock(sh(7, 1, 9))
    factory = make_session_factory(make_engine(database_url))
    workers = NotifierWorkers(settings, factory, clock)
    red: dict[str, Any] = {"light": "red", "red_since": sh(7, 1, 0, 0), "leaders": ()}
    fold(factory, condition("T-A", at=sh(7, 1, 0, 0, 5), **red))
    labels = {"level": "3", "role": "supervising_leader"}
    before = REGISTRY.get_sample_value("duban_notifier_recipient_gaps_total", labels) or 0.0
    workers.tick()
    clock.set(sh(7, 8, 9))  # red for seven days: 通报, but the task names no leader
    result = workers.tick()
    assert [(g.task_id, g.level, g.role.value) for g in result.gaps] == [
        ("T-A", 3, "supervising_leader")
    ]
    clock.set(sh(7, 8, 15))
    workers.tick()
    after = REGISTRY.get_sample_value("duban_notifier_recipient_gaps_total", labels)
    assert after == before + 1
