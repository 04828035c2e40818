"""The shared edge on its own: error envelope, database errors, headers, counts, the caller.

A small app built with `create_edge_app`, whose routes raise what a service's might; no
database or broker is needed, since what is under test is how the edge answers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.middleware.base import BaseHTTPMiddleware

from services.intake.api import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.notifier.api import create_app as create_notifier
from services.notifier.settings import NotifierSettings
from services.tracker.api import create_app as create_tracker
from services.tracker.settings import TrackerSettings
from shared.clock import SHANGHAI, FixedClock
from shared.db import make_engine, make_session_factory
from shared.edge import create_edge_app
from shared.edge.principal import principal_dependency, unauthorized
from shared.settings import CommonSettings


class Refusal(Exception):
    code = "some_rule"
    http_status = 409

    def to_body(self) -> dict[str, str]:
        return {"code": self.code, "message": "规则不允许"}


@dataclass(frozen=True)
class Caller:
    key_id: str


def authenticate(_request: Request, token: str) -> Caller:
    if token != "good":
        raise unauthorized("API 密钥无效")
    return Caller(key_id="k1")


Who = Annotated[Caller, Depends(principal_dependency(authenticate))]
router = APIRouter()


@router.get("/v1/raise/{kind}")
def raise_(kind: str) -> dict[str, str]:
    errors: dict[str, Exception] = {
        "nul": DataError("INSERT", {}, Exception("PostgreSQL text fields cannot contain NUL")),
        "duplicate": IntegrityError("INSERT", {}, Exception("duplicate key")),
        "down": OperationalError("SELECT 1", {}, Exception("connection refused")),
        "rule": Refusal(),
        "bug": RuntimeError("secret internals"),
    }
    raise errors[kind]


@router.get("/v1/me")
def me(who: Who) -> dict[str, str]:
    return {"key_id": who.key_id}


@pytest.fixture
def edge() -> tuple[FastAPI, Counter]:
    requests = Counter("edge_test_requests", "x", ["route", "status"], registry=CollectorRegistry())
    settings = CommonSettings(rate_limit_per_minute=6, rate_limit_burst=2)
    app = create_edge_app(
        service="edge-test",
        settings=settings,
        clock=FixedClock(dt.datetime(2022, 5, 20, tzinfo=SHANGHAI)),
        requests=requests,
        ready_checks=lambda: {"database": "ok"},
        title="edge",
        description="edge",
        rules=[Refusal],
    )
    app.include_router(router)
    return app, requests


def test_database_errors_are_503_only_when_the_database_is_away(
    edge: tuple[FastAPI, Counter],
) -> None:
    client = TestClient(edge[0], raise_server_exceptions=False)
    nul = client.get("/v1/raise/nul")
    assert (nul.status_code, nul.json()["detail"]["code"]) == (422, "data_rejected")
    assert "Retry-After" not in nul.headers
    duplicate = client.get("/v1/raise/duplicate")
    assert (duplicate.status_code, duplicate.json()["detail"]["code"]) == (409, "conflict")
    down = client.get("/v1/raise/down")
    assert down.status_code == 503 and "数据库暂不可用" in down.json()["detail"]
    assert int(down.headers["Retry-After"]) >= 1
    rule = client.get("/v1/raise/rule")
    assert (rule.status_code, rule.json()) == (
        409,
        {"detail": {"code": "some_rule", "message": "规则不允许"}},
    )
    bug = client.get("/v1/raise/bug")
    assert (bug.status_code, bug.json()) == (500, {"detail": "内部错误 (internal error)"})


def test_headers_counts_and_ops_routes(edge: tuple[FastAPI, Counter]) -> None:
    app, requests = edge
    client = TestClient(app)
    answer = client.get("/v1/me", headers={"Authorization": "Bearer good"})
    assert answer.status_code == 200
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    assert client.get("/readyz").json() == {"status": "ready", "checks": {"database": "ok"}}
    assert client.get("/healthz").status_code == 200
    assert requests.labels("/v1/me", "200")._value.get() == 1
    assert requests.labels("/readyz", "200")._value.get() == 1
    too_large = client.post("/v1/me", content=b"{" * (300 * 1024))
    assert too_large.status_code == 413 and too_large.headers["x-content-type-options"]


def test_the_caller_is_authenticated_then_rate_limited(edge: tuple[FastAPI, Counter]) -> None:
    client = TestClient(edge[0])
    assert client.get("/v1/me").status_code == 401
    assert client.get("/v1/me", headers={"Authorization": "Bearer bad"}).status_code == 401
    good = {"Authorization": "Bearer good"}
    assert [client.get("/v1/me", headers=good).status_code for _ in "ab"] == [200, 200]
    limited = client.get("/v1/me", headers=good)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


def test_no_service_uses_base_http_middleware() -> None:
    """Every middleware of the three apps is pure ASGI (BaseHTTPMiddleware is slow)."""
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"  # never connected to
    common: dict[str, Any] = {"database_url": url, "kafka_bootstrap_servers": "127.0.0.1:1"}
    clock = FixedClock(dt.datetime(2022, 5, 20, 10, 0, tzinfo=SHANGHAI))
    factory = make_session_factory(make_engine(url))
    apps = [
        create_intake(IntakeSettings(**common), clock, follow_directory=False),
        create_tracker(TrackerSettings(**common), factory, clock, run_workers=False),
        create_notifier(NotifierSettings(**common), factory, clock, run_workers=False),
    ]
    for app in apps:
        kinds = [m.cls for m in app.user_middleware]
        assert kinds, app.title
        assert not any(isinstance(k, type) and issubclass(k, BaseHTTPMiddleware) for k in kinds), (
            app.title
        )
