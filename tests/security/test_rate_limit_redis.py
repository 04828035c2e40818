"""Replicas share one rate limit through Redis (DUBAN_RATE_LIMIT_STORAGE), and only then.

Two tracker apps on one real database stand for two replicas behind a load balancer; a
real Redis server, started here on a free port, holds the counts.
"""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from services.tracker.api import create_app
from services.tracker.keys import create_key
from services.tracker.settings import TrackerSettings
from shared.clock import SHANGHAI, FixedClock
from shared.db import UnitOfWork, make_engine, make_session_factory
from shared.edge.ratelimit import RateLimit

pytestmark = pytest.mark.integration

REDIS_SERVER = Path("/usr/bin/redis-server")
SHARED_REDIS = "redis://127.0.0.1:6379/0"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A Redis of this test's own, or the machine's with a key prefix of this run's."""
    if not REDIS_SERVER.exists():
        yield SHARED_REDIS
        return
    port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="duban-redis-"))
    server = subprocess.Popen(
        [
            str(REDIS_SERVER),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise
            time.sleep(0.05)
    try:
        yield url
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def replicas(
    database_url: str, storage: str, stack: ExitStack
) -> tuple[TestClient, TestClient, str]:
    """Two tracker apps on one database with a 3-request burst, and a supervisor key."""
    settings = TrackerSettings(
        database_url=database_url,
        rate_limit_per_minute=6,
        rate_limit_burst=3,
        rate_limit_storage=storage,
    )
    clock = FixedClock(dt.datetime(2022, 5, 20, 10, 0, tzinfo=SHANGHAI))
    factory = make_session_factory(make_engine(database_url))
    with UnitOfWork(factory) as uow:
        key = create_key(
            uow.session,
            role="supervisor",
            unit_name=None,
            label="redis",
            expires_at=None,
            now=clock.now(),
        ).plaintext
        uow.commit()
    clients = []
    for _ in range(2):
        app = create_app(settings, factory, clock, run_workers=False)
        if storage == SHARED_REDIS:  # the machine's Redis: keys of this run only
            app.state.limiter = RateLimit(
                per_minute=6,
                burst=3,
                namespace="tracker",
                storage_uri=storage,
                key_prefix=f"duban-test-{uuid.uuid4().hex}",
            )
        clients.append(stack.enter_context(TestClient(app)))
    return clients[0], clients[1], key


def test_two_replicas_share_one_budget_through_redis(database_url: str, redis_url: str) -> None:
    with ExitStack() as stack:
        first, second, key = replicas(database_url, redis_url, stack)
        headers = {"Authorization": f"Bearer {key}"}
        answers = [
            first.get("/v1/tasks", headers=headers).status_code,
            second.get("/v1/tasks", headers=headers).status_code,
            first.get("/v1/tasks", headers=headers).status_code,
        ]
        assert answers == [200, 200, 200]
        # The burst of 3 is spent across both: each replica now refuses.
        for replica in (second, first):
            limited = replica.get("/v1/tasks", headers=headers)
            assert limited.status_code == 429, limited.text
            assert 1 <= int(limited.headers["Retry-After"]) <= 30


def test_in_process_storage_counts_per_replica(database_url: str) -> None:
    with ExitStack() as stack:
        first, second, key = replicas(database_url, "memory://", stack)
        headers = {"Authorization": f"Bearer {key}"}
        assert [first.get("/v1/tasks", headers=headers).status_code for _ in "abc"] == [200] * 3
        assert first.get("/v1/tasks", headers=headers).status_code == 429
        assert second.get("/v1/tasks", headers=headers).status_code == 200, "its own budget"
