"""A real Prometheus (Debian's package) scrapes the three services running as processes.

The services start from their entrypoints with settings from the environment, as in
docker-compose.yml, on free loopback ports; Prometheus runs on its own free port with its own
data directory, from deploy/prometheus/prometheus.yml with Docker's DNS discovery swapped for
those loopback targets, and evaluates deploy/prometheus/alerts.yml.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from devtools.servers import LocalPostgres, free_port, start_broker
from services.tracker.importer import import_document
from services.tracker.keys import create_key
from shared.clock import SHANGHAI
from shared.db import UnitOfWork, make_engine, make_session_factory
from tests.integration.stack import FAST, demo_document, wait_until

from .conftest import DASHBOARDS, DEPLOY, ROOT
from .prometheus_bin import PrometheusBinaries
from .promql import dashboard_queries, exported_names, substitute_grafana_variables, unknown_names

pytestmark = pytest.mark.integration

SERVICES = ("intake", "tracker", "notifier")
LEAD = "市发展改革委"  # lead unit of T2022-001, due 2022-06-30
SERVICE_NOW = dt.datetime(2022, 7, 1, 10, 0, tzinfo=SHANGHAI)  # the day after: T2022-001 is red


@dataclass
class Process:
    """A child process and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text("utf-8", errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Running:
    """The running services and Prometheus."""

    ports: dict[str, int]
    prometheus_port: int
    unit_key: str
    processes: list[Process] = field(default_factory=list)

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.processes)

    def query(self, expr: str) -> dict[str, Any]:
        """Prometheus' instant-query answer (`data`), failing on an error."""
        response = httpx.get(
            f"http://127.0.0.1:{self.prometheus_port}/api/v1/query",
            params={"query": expr},
            timeout=10,
        )
        body: dict[str, Any] = response.json()
        assert body.get("status") == "success", f"{expr}: {body}"
        data: dict[str, Any] = body["data"]
        return data

    def api(self, path: str) -> dict[str, Any]:
        response = httpx.get(f"http://127.0.0.1:{self.prometheus_port}{path}", timeout=10)
        response.raise_for_status()
        data: dict[str, Any] = response.json()["data"]
        return data


def start(name: str, command: list[str], log: Path, env: dict[str, str]) -> Process:
    out = open(log, "wb")  # noqa: SIM115 - handed to the child, closed with the test's tmp dir
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return Process(name, process, log)


def seed(database_url: str) -> str:
    """Load the harness' catalog and issue one unit key; returns the key."""
    engine = make_engine(database_url, pool_size=1)
    with UnitOfWork(make_session_factory(engine)) as uow:
        import_document(uow.session, demo_document(), now=SERVICE_NOW)
        uow.session.flush()
        key = create_key(
            uow.session, role="unit", unit_name=LEAD, label="ops", expires_at=None, now=SERVICE_NOW
        ).plaintext
        uow.commit()
    engine.dispose()
    return key


def prometheus_config(ports: dict[str, int], prometheus_port: int) -> dict[str, Any]:
    """The deployed config, scraping loopback ports every second."""
    config: dict[str, Any] = yaml.safe_load(
        (DEPLOY / "prometheus" / "prometheus.yml").read_text("utf-8")
    )
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(DEPLOY / "prometheus" / name) for name in config["rule_files"]]
    targets = {**ports, "prometheus": prometheus_port}
    for job in config["scrape_configs"]:
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{targets[job['job_name']]}"]}]
    assert {job["job_name"] for job in config["scrape_configs"]} == set(targets)
    return config


@pytest.fixture(scope="module")
def running(
    postgres: LocalPostgres,
    prometheus_binaries: PrometheusBinaries,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Running]:
    """The stack for this module's tests: a fresh database and broker, services, Prometheus."""
    tmp_path = tmp_path_factory.mktemp("prometheus-stack")
    database_url = postgres.create_database(
        f"prom_{uuid.uuid4().hex[:12]}", template="duban_template"
    )
    broker = start_broker(log_path=tmp_path / "tansu.log")
    unit_key = seed(database_url)
    ports = {name: free_port() for name in SERVICES}
    offset = SERVICE_NOW.timestamp() - dt.datetime.now(dt.UTC).timestamp()
    base = {k: v for k, v in os.environ.items() if not k.startswith("DUBAN_")}
    base.update(
        {
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "DUBAN_ENV": "development",
            "DUBAN_HOST": "127.0.0.1",
            "DUBAN_LOG_FORMAT": "json",
            "DUBAN_CLOCK_OFFSET_SECONDS": str(offset),
            **{f"DUBAN_{k.upper()}": str(v) for k, v in FAST.items()},
        }
    )
    stack = Running(ports=ports, prometheus_port=free_port(), unit_key=unit_key)
    try:
        for name, port in ports.items():
            env = {**base, "DUBAN_PORT": str(port)}
            command = [sys.executable, "-m", f"services.{name}.main"]
            stack.processes.append(start(name, command, tmp_path / f"{name}.log", env))
        config = tmp_path / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(prometheus_config(ports, stack.prometheus_port), allow_unicode=True),
            "utf-8",
        )
        command = [
            str(prometheus_binaries.prometheus),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{stack.prometheus_port}",
        ]
        stack.processes.append(start("prometheus", command, tmp_path / "prometheus.log", base))

        def ready() -> bool:
            for process in stack.processes:
                assert process.process.poll() is None, f"{process.name} exited\n{stack.logs()}"
            urls = [f"http://127.0.0.1:{port}/readyz" for port in ports.values()]
            urls.append(f"http://127.0.0.1:{stack.prometheus_port}/-/ready")
            try:
                return all(httpx.get(url, timeout=2).status_code == 200 for url in urls)
            except httpx.HTTPError:
                return False

        try:
            wait_until(ready, timeout=90, what="services and Prometheus ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{stack.logs()}") from exc
        yield stack
    finally:
        for process in reversed(stack.processes):
            process.stop()
        broker.stop()


def test_prometheus_scrapes_the_stack_and_answers_business_queries(running: Running) -> None:
    def all_up() -> bool:
        targets = running.api("/api/v1/targets")["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        return all(health.get(name) == "up" for name in (*SERVICES, "prometheus"))

    wait_until(all_up, timeout=30, what="every scrape target up")

    # A report travels intake -> Kafka -> tracker; Prometheus sees both ends count it.
    def submitted() -> bool:
        response = httpx.post(
            f"http://127.0.0.1:{running.ports['intake']}/v1/reports",
            json={"task_code": "T2022-001", "percent": 60, "summary": "已完成主要指标。"},
            headers={"Authorization": f"Bearer {running.unit_key}"},
            timeout=15,
        )
        # 401/503 until intake has read the key from the tracker's directory topic.
        assert response.status_code in (202, 401, 503), response.text
        return response.status_code == 202

    wait_until(submitted, timeout=60, what="intake to accept a report")

    def scalar(expr: str) -> float | None:
        result = running.query(expr)["result"]
        return float(result[0]["value"][1]) if result else None

    try:
        # The business metric: the task past its due date is red, under its lead unit.
        red = wait_until(
            lambda: running.query(f'duban_tasks{{light="red", unit="{LEAD}"}}')["result"],
            timeout=45,
            what="duban_tasks{light=red} for the lead unit",
        )
        wait_until(
            lambda: scalar("sum(duban_tracker_reports_applied_total)") == 1,
            timeout=45,
            what="the report applied, as seen by Prometheus",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{running.logs()}") from exc
    assert len(red) == 1
    assert red[0]["metric"]["job"] == "tracker"
    assert float(red[0]["value"][1]) == 1
    assert scalar("sum(duban_intake_reports_accepted_total)") == 1
    assert scalar("sum(duban_tasks)") == 3

    # The Supervision dashboard's own overview query gives the same answer.
    supervision = json_panels(DASHBOARDS, "任务灯色总览")
    lights = {
        series["metric"]["light"]: float(series["value"][1])
        for series in running.query(substitute_grafana_variables(supervision))["result"]
    }
    assert lights.get("red", 0) >= 1 and sum(lights.values()) == 3, lights


def test_every_dashboard_and_alert_query_runs_on_real_prometheus(running: Running) -> None:
    # The same names, read from each running service's own /metrics page.
    exported: set[str] = set()
    for port in running.ports.values():
        exported |= exported_names(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
    queries = [(q.where, q.expr) for path in DASHBOARDS for q in dashboard_queries(path)]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text("utf-8"))["groups"]
    queries += [(f"alert {r['alert']}", r["expr"]) for g in rules for r in g["rules"]]
    for where, expr in queries:
        if expr.lstrip().startswith("label_values("):
            continue
        assert not unknown_names(expr, exported), f"{where}: {unknown_names(expr, exported)}"
        running.query(substitute_grafana_variables(expr))  # fails on a PromQL error

    # Prometheus loaded every alert group and evaluates every rule without error.
    def evaluated() -> list[dict[str, Any]] | None:
        groups = running.api("/api/v1/rules")["groups"]
        loaded = [rule for group in groups for rule in group["rules"]]
        done = loaded and all(r.get("lastEvaluation", "").startswith("2") for r in loaded)
        return loaded if done else None

    loaded = wait_until(evaluated, timeout=30, what="every alert rule evaluated")
    assert {r["name"] for r in loaded} == {r["alert"] for g in rules for r in g["rules"]}
    assert all(r["health"] == "ok" for r in loaded), [
        (r["name"], r.get("lastError")) for r in loaded if r["health"] != "ok"
    ]


def json_panels(paths: list[Path], title: str) -> str:
    """The first query of the panel with this title."""
    for path in paths:
        for query in dashboard_queries(path):
            if query.where.startswith(f"panel {title!r}"):
                return query.expr
    raise AssertionError(f"no panel {title!r}")
