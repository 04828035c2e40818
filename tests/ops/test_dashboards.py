"""Grafana provisioning and dashboards: valid, explained, and built on metrics that exist."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import DASHBOARDS, DEPLOY, ROOT
from .promql import (
    dashboard_queries,
    exported_names,
    metric_names,
    unknown_names,
    walk_panels,
)

GRAFANA = DEPLOY / "grafana"
CJK = re.compile(r"[\u4e00-\u9fff]")
OPERATIONS_DOC = ROOT / "docs" / "operations.md"


def load(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return board


def datasource_uid() -> str:
    provisioning = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text("utf-8")
    )
    (datasource,) = provisioning["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    uid: str = datasource["uid"]
    return uid


# --- the metric-name reader the checks below rely on -------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('duban_tasks{light="red"}', {"duban_tasks"}),
        (
            "histogram_quantile(0.95, sum by (le, topic) "
            "(rate(duban_publish_latency_seconds_bucket[$__rate_interval])))",
            {"duban_publish_latency_seconds_bucket"},
        ),
        (
            'sum by (job) (up{job=~"a|b"}) / on (job) group_left (x) foo_total offset 1h > 0',
            {"up", "foo_total"},
        ),
        ('time() - max(a_seconds{x="by (y)"}) > 1e3 unless b', {"a_seconds", "b"}),
        ('max by (unit) (duban_tasks{unit=~"$unit"})', {"duban_tasks"}),
        ("label_values(duban_tasks, unit)", {"duban_tasks"}),
        ("label_values(unit)", set()),
        ('{__name__="duban_tasks", light="red"}', {"duban_tasks"}),
    ],
)
def test_metric_names_are_read_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_exported_names_include_families_without_samples() -> None:
    exposition = (
        "# HELP a_total x\n# TYPE a_total counter\n"
        "# HELP h x\n# TYPE h histogram\n"
        'h_bucket{le="+Inf"} 1.0\nh_sum 1.0\nh_count 1.0\n'
        "# HELP g x\n# TYPE g gauge\n"
    )
    names = exported_names(exposition)
    assert {"a_total", "h_bucket", "h_sum", "h_count", "g"} <= names
    assert unknown_names("rate(a_total[5m]) + g + missing_total", names) == {"missing_total"}


# --- provisioning ---------------------------------------------------------------------------


def test_provisioning_points_at_the_mounted_dashboards() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "duban.yml").read_text("utf-8")
    )["providers"]
    (provider,) = providers
    assert provider["type"] == "file"
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    environment = compose["services"]["grafana"]["environment"]
    home = environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).parent == Path(provider["options"]["path"])
    assert (GRAFANA / "dashboards" / Path(home).name).is_file()


def test_there_are_two_dashboards_with_distinct_uids() -> None:
    boards = [load(path) for path in DASHBOARDS]
    assert {path.name for path in DASHBOARDS} == {"operations.json", "supervision.json"}
    assert len({board["uid"] for board in boards}) == len(boards)
    for board in boards:
        assert CJK.search(board["title"]) and board["description"]


# --- panels ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_has_a_chinese_title_and_says_what_it_answers(path: Path) -> None:
    uid = datasource_uid()
    panels = list(walk_panels(load(path)["panels"]))
    assert panels
    for panel in panels:
        title = panel.get("title", "")
        assert CJK.search(title), f"panel {panel['id']} has no Chinese title: {title!r}"
        assert CJK.search(panel.get("description", "")), f"{title}: no description"
        if panel["type"] == "row":
            continue
        assert "？" in panel["description"], f"{title}: the description asks no question"
        assert panel["datasource"]["uid"] == uid, title
        assert panel["targets"], f"{title}: no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), title
            assert target.get("datasource", {}).get("uid", uid) == uid, title


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_names_an_exported_metric(path: Path, service_metric_names: set[str]) -> None:
    problems = [
        f"{query.where}: {sorted(unknown)} in {query.expr}"
        for query in dashboard_queries(path)
        if (unknown := unknown_names(query.expr, service_metric_names))
    ]
    assert not problems, "\n".join(problems)
    for query in dashboard_queries(path):
        assert metric_names(query.expr), f"{query.where} selects no metric: {query.expr}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_variable_a_query_uses_is_defined(path: Path) -> None:
    board = load(path)
    defined = {variable["name"] for variable in board["templating"]["list"]}
    for query in dashboard_queries(path):
        used = set(re.findall(r"\$\{?([A-Za-z]\w*)", query.expr))
        assert used <= defined, f"{query.where} uses undefined {used - defined}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panels_do_not_overlap(path: Path) -> None:
    boxes = [
        (panel["title"], panel["gridPos"])
        for panel in load(path)["panels"]  # top level: what the grid lays out
    ]
    for (a, p), (b, q) in itertools.combinations(boxes, 2):
        apart = (
            p["x"] + p["w"] <= q["x"]
            or q["x"] + q["w"] <= p["x"]
            or p["y"] + p["h"] <= q["y"]
            or q["y"] + q["h"] <= p["y"]
        )
        assert apart, f"{path.name}: {a!r} overlaps {b!r}"
        assert p["x"] >= 0 and p["x"] + p["w"] <= 24, a


def test_operations_dashboard_covers_flow_lag_errors_latency() -> None:
    rows = [p["title"] for p in load(GRAFANA / "dashboards" / "operations.json")["panels"]]
    for topic in ("流量", "积压", "错误", "延迟"):
        assert any(topic in title for title in rows if title), topic
    used = {
        n
        for q in dashboard_queries(GRAFANA / "dashboards" / "operations.json")
        for n in metric_names(q.expr)
    }
    assert {
        "duban_consumer_lag_messages",
        "duban_consumer_messages_total",
        "duban_publish_latency_seconds_bucket",
        "duban_tracker_outbox_backlog",
        "duban_tracker_scan_duration_seconds_bucket",
        "duban_notifier_deliveries_total",
        "duban_notifier_delivery_retries_total",
        "duban_intake_http_requests_total",
    } <= used


def test_supervision_dashboard_covers_lights_overdue_and_escalations() -> None:
    path = GRAFANA / "dashboards" / "supervision.json"
    by_metric: dict[str, list[str]] = {}
    for query in dashboard_queries(path):
        for name in metric_names(query.expr):
            by_metric.setdefault(name, []).append(query.expr)
    # Lights by unit, by section and by leader.
    assert any("by (unit, light)" in e for e in by_metric["duban_tasks"])
    assert any("by (section, light)" in e for e in by_metric["duban_tasks_by_section"])
    assert any("by (leader, light)" in e for e in by_metric["duban_tasks_by_leader"])
    assert "duban_tasks_overdue_by_leader" in by_metric
    # Overdue trend, reports per day, escalations by level.
    assert any('light="red"' in e for e in by_metric["duban_tasks"])
    assert any("[1d]" in e for e in by_metric["duban_intake_reports_accepted_total"])
    assert any("by (level)" in e for e in by_metric["duban_notifier_notifications_planned_total"])


def test_the_operations_doc_explains_every_panel() -> None:
    doc = OPERATIONS_DOC.read_text("utf-8")
    missing = [
        f"{path.name}: {panel['title']}"
        for path in DASHBOARDS
        for panel in walk_panels(load(path)["panels"])
        if panel["type"] != "row" and panel["title"] not in doc
    ]
    assert not missing, "docs/operations.md does not explain:\n" + "\n".join(missing)
