"""The edge sheds load: too many requests in flight, or no pooled connection, answer 503
with Retry-After at once; readiness and liveness answer whatever the requests are doing."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY, CollectorRegistry, Counter
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from services.tracker.api import create_app
from services.tracker.keys import create_key
from services.tracker.settings import TrackerSettings
from shared.clock import SHANGHAI, FixedClock
from shared.db import UnitOfWork, make_engine, make_session_factory
from shared.edge import create_edge_app
from shared.settings import CommonSettings

pytestmark = pytest.mark.integration

CLOCK = FixedClock(dt.datetime(2022, 5, 20, 10, tzinfo=SHANGHAI))


def sample(name: str, **labels: str) -> float:
    """The current value of one sample in the default registry (0 if absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def busy_app(*, limit: int) -> tuple[FastAPI, asyncio.Event, asyncio.Event]:
    """An edge app with a route that holds its request until `release` is set."""
    requests = Counter("shed_test_requests", "x", ["route", "status"], registry=CollectorRegistry())
    app = create_edge_app(
        service="shed-test",
        settings=CommonSettings(max_requests_in_flight=limit, rate_limit_per_minute=0),
        clock=CLOCK,
        requests=requests,
        ready_checks=lambda: {"consumer": "ok"},
        title="shed",
        description="shed",
    )
    entered, release = asyncio.Event(), asyncio.Event()

    @app.get("/v1/hold")
    async def hold() -> dict[str, str]:
        entered.set()
        await release.wait()
        return {"status": "released"}

    @app.get("/v1/quick")
    async def quick() -> dict[str, str]:
        return {"status": "quick"}

    return app, entered, release


@pytest.mark.anyio
async def test_past_the_in_flight_limit_a_request_is_answered_503_at_once() -> None:
    app, entered, release = busy_app(limit=2)
    transport = httpx.ASGITransport(app=app)
    shed_before = sample("duban_http_requests_shed_total", service="shed-test", reason="in_flight")
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        held = [asyncio.create_task(client.get("/v1/hold")) for _ in range(2)]
        await entered.wait()
        while sample("duban_http_requests_in_flight", service="shed-test") < 2:
            await asyncio.sleep(0.01)

        refused = await client.get("/v1/quick")
        assert refused.status_code == 503, refused.text
        assert "服务繁忙" in refused.json()["detail"]
        assert int(refused.headers["Retry-After"]) >= 1
        # The ops routes are exempt: a busy service is alive, ready and observable.
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"consumer": "ok"}
        assert (await client.get("/metrics")).status_code == 200
        after = sample("duban_http_requests_shed_total", service="shed-test", reason="in_flight")
        assert after == shed_before + 1

        release.set()
        assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
        assert (await client.get("/v1/quick")).status_code == 200
        assert sample("duban_http_requests_in_flight", service="shed-test") == 0


@pytest.fixture
def admin_key(database_url: str) -> str:
    factory = make_session_factory(make_engine(database_url, pool_size=1))
    with UnitOfWork(factory) as uow:
        key = create_key(
            uow.session, role="admin", unit_name=None, label="t", expires_at=None, now=CLOCK.now()
        )
        uow.commit()
    return key.plaintext


def small_pool_tracker(database_url: str) -> tuple[FastAPI, sessionmaker[Session]]:
    engine = make_engine(
        database_url, pool_size=1, max_overflow=0, pool_timeout=0.2, name="shed-tracker"
    )
    factory = make_session_factory(engine)
    settings = TrackerSettings(database_url=database_url, rate_limit_per_minute=0)
    return create_app(settings, factory, CLOCK, run_workers=False), factory


def test_no_pooled_connection_within_the_pool_timeout_is_503_and_readiness_still_answers(
    database_url: str, admin_key: str
) -> None:
    app, factory = small_pool_tracker(database_url)
    headers = {"Authorization": f"Bearer {admin_key}"}
    waits_before = sample("duban_db_pool_wait_seconds_count", pool="shed-tracker")
    shed_before = sample("duban_http_requests_shed_total", service="tracker", reason="db_pool")
    with TestClient(app) as client:
        assert client.get("/v1/keys", headers=headers).status_code == 200
        # Someone holds the pool's only connection (a long request, a busy worker).
        with UnitOfWork(factory) as holder:
            holder.session.execute(text("SELECT 1"))
            assert sample("duban_db_pool_in_use", pool="shed-tracker") == 1

            refused = client.get("/v1/keys", headers=headers)
            assert refused.status_code == 503, refused.text
            assert "数据库连接池已满" in refused.json()["detail"]
            assert int(refused.headers["Retry-After"]) >= 1
            refused_write = client.post(
                "/v1/keys", headers=headers, json={"role": "supervisor", "label": "满"}
            )
            assert refused_write.status_code == 503, refused_write.text
            # Readiness checks on a connection of its own, so the full pool is not a failure.
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"database": "ok"}
            assert client.get("/healthz").status_code == 200

        assert client.get("/v1/keys", headers=headers).status_code == 200
    assert sample("duban_db_pool_in_use", pool="shed-tracker") == 0
    assert sample("duban_http_requests_shed_total", service="tracker", reason="db_pool") == (
        shed_before + 2
    )
    # Every checkout was timed, the ones that timed out too (the holder's, 2 × 200, …).
    assert sample("duban_db_pool_wait_seconds_count", pool="shed-tracker") >= waits_before + 4
    # An overloaded write is not an attempt the audit log keeps (it would need the pool too).
    with UnitOfWork(factory) as uow:
        shed_audited = uow.session.execute(
            text("SELECT count(*) FROM tracker.audit_log WHERE route = '/v1/keys' AND status = 503")
        ).scalar_one()
    assert shed_audited == 0
