"""Fixtures for the operations tests: Prometheus' binaries and the names the services export."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.intake.api import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.notifier.api import create_app as create_notifier
from services.notifier.settings import NotifierSettings
from services.tracker.api import create_app as create_tracker
from services.tracker.settings import TrackerSettings
from shared.clock import SHANGHAI, FixedClock
from shared.db import make_engine, make_session_factory

from .prometheus_bin import PrometheusBinaries, PrometheusUnavailable, ensure_prometheus
from .promql import exported_names

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))


@pytest.fixture(scope="session")
def prometheus_binaries() -> PrometheusBinaries:
    """Debian's prometheus and promtool, installed on first use; a failure fails, never skips."""
    try:
        return ensure_prometheus()
    except PrometheusUnavailable as exc:
        pytest.fail(f"cannot install Debian's prometheus package: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def service_metric_names() -> set[str]:
    """Every metric name the three services' /metrics pages declare.

    The apps are built as their entrypoints build them (without starting workers, so no
    broker or database is needed) and their own /metrics endpoints are read.
    """
    # Never connected to: the apps only need a session factory to be built.
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    common: dict[str, Any] = {"database_url": url, "kafka_bootstrap_servers": "127.0.0.1:1"}
    clock = FixedClock(dt.datetime(2022, 5, 20, 10, 0, tzinfo=SHANGHAI))
    factory = make_session_factory(make_engine(url))
    apps = [
        create_intake(IntakeSettings(**common), clock, follow_directory=False),
        create_tracker(TrackerSettings(**common), factory, clock, run_workers=False),
        create_notifier(NotifierSettings(**common), factory, clock, run_workers=False),
    ]
    names: set[str] = set()
    for app in apps:
        response = TestClient(app).get("/metrics")
        assert response.status_code == 200, response.text
        names |= exported_names(response.text)
    return names
