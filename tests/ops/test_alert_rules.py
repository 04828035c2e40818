"""Prometheus config and alert rules: promtool accepts them, and every alert is unit-tested."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import prometheus_bin
from .conftest import DEPLOY, ROOT
from .prometheus_bin import PrometheusBinaries
from .promql import unknown_names

PROMETHEUS_DIR = DEPLOY / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
REQUIRED_ALERTS = {
    "DubanConsumerLagGrowing",  # consumer lag growing
    "DubanDeadLetters",  # DLQ not empty
    "DubanDeliveryFailures",  # delivery failures
    "DubanScanNotRunning",  # scan not running
    "DubanOutboxBacklog",  # outbox backlog
}


def promtool(binaries: PrometheusBinaries, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run promtool; returns the finished process."""
    return subprocess.run(
        [str(binaries.promtool), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def alert_rules(path: Path = ALERTS) -> list[dict[str, Any]]:
    """Every alerting rule in a rules file."""
    groups = yaml.safe_load(path.read_text("utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def test_promtool_check_rules_passes(prometheus_binaries: PrometheusBinaries) -> None:
    result = promtool(prometheus_binaries, "check", "rules", ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config_passes(prometheus_binaries: PrometheusBinaries) -> None:
    """The compose Prometheus config (scrape jobs, rule files) is valid."""
    result = promtool(prometheus_binaries, "check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass(prometheus_binaries: PrometheusBinaries) -> None:
    result = promtool(prometheus_binaries, "test", "rules", ALERT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_issue_alerts_exist() -> None:
    assert {rule["alert"] for rule in alert_rules()} >= REQUIRED_ALERTS


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases: dict[str, list[list[Any]]] = {}
    for test in yaml.safe_load(ALERT_TESTS.read_text("utf-8"))["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], []).append(case.get("exp_alerts") or [])
    for rule in alert_rules():
        expectations = cases.get(rule["alert"], [])
        assert any(expectations), f"{rule['alert']}: no test case where it fires"
        assert not all(expectations), f"{rule['alert']}: no test case where it stays quiet"


@pytest.mark.parametrize("alert", [rule["alert"] for rule in alert_rules()])
def test_unit_tests_catch_an_alert_that_never_fires(
    alert: str, prometheus_binaries: PrometheusBinaries, tmp_path: Path
) -> None:
    """Break one alert: `promtool test rules` must fail, so the alert really is tested."""
    rules = yaml.safe_load(ALERTS.read_text("utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = "vector(0) > 1"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules, allow_unicode=True), "utf-8")
    shutil.copy(ALERT_TESTS, tmp_path / "alerts.test.yml")
    result = promtool(prometheus_binaries, "test", "rules", tmp_path / "alerts.test.yml")
    assert result.returncode != 0, f"breaking {alert} went unnoticed:\n{result.stdout}"
    assert f"alertname: {alert}," in result.stdout + result.stderr


def test_every_alert_names_only_exported_metrics(service_metric_names: set[str]) -> None:
    problems = {
        rule["alert"]: unknown
        for rule in alert_rules()
        if (unknown := unknown_names(rule["expr"], service_metric_names))
    }
    assert not problems, f"alerts use metrics no service exports: {problems}"


def test_every_alert_says_how_bad_what_and_where_to_read_on() -> None:
    headings = [
        line.lstrip("#").strip()
        for line in OPERATIONS_DOC.read_text("utf-8").splitlines()
        if line.startswith("#")
    ]
    anchors = {github_anchor(heading) for heading in headings}
    for rule in alert_rules():
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in {"critical", "warning"}, name
        annotations = rule.get("annotations", {})
        assert re.search(r"[\u4e00-\u9fff]", annotations.get("summary", "")), name
        assert annotations.get("description"), name
        runbook = annotations.get("runbook", "")
        doc, _, anchor = runbook.partition("#")
        assert doc == "docs/operations.md", f"{name}: runbook {runbook!r}"
        assert anchor in anchors, f"{name}: docs/operations.md has no heading #{anchor}"
        assert name in OPERATIONS_DOC.read_text("utf-8"), f"{name} is not explained"


def test_without_prometheus_and_apt_the_set_up_fails_instead_of_skipping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prometheus_bin, "_found", lambda: None)
    monkeypatch.setattr("tests.ops.prometheus_bin.shutil.which", lambda _name: None)
    with pytest.raises(prometheus_bin.PrometheusUnavailable, match="no apt-get"):
        prometheus_bin.ensure_prometheus()
