"""Migration 0002 keeps what the interim notifier wrote, and the engine counts it as sent."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from devtools.servers import LocalPostgres
from services.notifier.adapters.sql import SqlUnitOfWork
from services.notifier.escalation.policy import local_policy
from services.notifier.usecases.tick import run_tick
from shared.db import make_session_factory
from shared.migrations import alembic_config, upgrade_head

from .test_notifier_support import OFFICE, condition, sh

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "notifier" / "migrations"


def test_interim_rows_survive_and_count_as_history(postgres: LocalPostgres) -> None:
    url = postgres.create_database(f"m_{uuid.uuid4().hex[:12]}")
    command.upgrade(alembic_config(MIGRATIONS, url), "0001")
    event = condition("T-A", at=sh(7, 1, 0, 0, 5), light="red", red_since=sh(7, 1, 0, 0))
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO notifier.task_conditions (task_code, light, light_since, event) "
                "VALUES ('T-A', 'red', :since, CAST(:event AS jsonb))"
            ),
            {"since": event.light_since, "event": json.dumps(event.model_dump(mode="json"))},
        )
        for role, name in (("lead_unit", "市住房城乡建设委"), ("supervising_office", OFFICE)):
            conn.execute(
                text(
                    "INSERT INTO notifier.notifications (id, task_codes, level, level_name, "
                    "recipient_role, recipient, channel, subject, body, status, attempts, "
                    "created_at, delivered_at) VALUES (:id, ARRAY['T-A'], 2, '督办', :role, "
                    ":name, 'inbox', '【督办】T-A 已逾期', '…', 'delivered', 1, :at, :at)"
                ),
                {"id": uuid.uuid4(), "role": role, "name": name, "at": sh(7, 1, 0, 0, 6)},
            )

    upgrade_head(MIGRATIONS, url)

    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT recipient_role, notification_id = id, sequence, window_start, action "
                "FROM notifier.notifications ORDER BY recipient"
            )
        ).all()
        occurred = conn.execute(text("SELECT occurred_at FROM notifier.task_conditions")).scalar()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("lead_unit_leadership", True, 1, sh(7, 1, 0, 0)),
        ("supervising_office", True, 1, sh(7, 1, 0, 0)),
    ]
    assert all(r[4] for r in rows)
    assert occurred == event.occurred_at

    # The same day, the real engine sees the interim 督办 as sent and plans nothing.
    factory = make_session_factory(engine)
    with SqlUnitOfWork(factory) as uow:
        result = run_tick(uow, policy=local_policy(), now=sh(7, 1, 9))
        uow.commit()
    assert (result.planned, result.inserted) == (0, 0)
    with SqlUnitOfWork(factory) as uow:
        result = run_tick(uow, policy=local_policy(), now=sh(7, 4, 9))
        uow.commit()
    assert result.inserted == 2  # and repeats three days later, as the 2nd notice
    engine.dispose()
