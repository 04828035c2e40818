"""Just enough PromQL reading for the ops tests: which metric names does a query select?

Not a parser: it removes what cannot be a metric name (strings, label matchers, ranges,
label lists after by/without/on/ignoring/group_*) and keeps the identifiers that are
neither functions, keywords nor Grafana variables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# Series Prometheus itself adds to every scrape; alerts and dashboards may use them.
SYNTHETIC = frozenset(
    {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS", "ALERTS_FOR_STATE"}
)

KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "atan2",
        "inf",
        "nan",
    }
)

_GRAFANA_INTERVALS = re.compile(
    r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}"
)
_GRAFANA_VARIABLE = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(?::[a-z]+)?\}?")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:([^,()]+?)\s*,)?\s*[A-Za-z_]\w*\s*\)\s*$")


def substitute_grafana_variables(expr: str) -> str:
    """Replace Grafana's template variables so the expression is plain PromQL."""
    expr = _GRAFANA_INTERVALS.sub("5m", expr)
    return _GRAFANA_VARIABLE.sub(".*", expr)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression (or a Grafana `label_values` query) selects."""
    label_values = _LABEL_VALUES.match(expr)
    if label_values:
        selector = label_values.group(1)
        return metric_names(selector) if selector else set()
    text = substitute_grafana_variables(expr)
    text = _STRING.sub('""', text)
    # A selector's `__name__` matcher is a metric name too.
    names = set(re.findall(r'__name__\s*=\s*"([A-Za-z_:][A-Za-z0-9_:]*)"', expr))
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


def exported_names(exposition: str) -> set[str]:
    """Every series name a /metrics page can produce, including families with no samples yet.

    A labelled metric shows only its HELP and TYPE lines until its first observation; the
    names it will produce follow from its type.
    """
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
        "stateset": ("",),
        "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
        "unknown": ("",),
    }
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def unknown_names(expr: str, exported: set[str]) -> set[str]:
    """Names the expression uses that nothing exports."""
    return {name for name in metric_names(expr) if name not in exported and name not in SYNTHETIC}


@dataclass(frozen=True)
class DashboardQuery:
    """One PromQL query in a dashboard: a panel target or a template variable."""

    dashboard: str
    where: str
    expr: str


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def dashboard_queries(path: Path) -> list[DashboardQuery]:
    """Every PromQL query in a dashboard file."""
    board = json.loads(path.read_text("utf-8"))
    queries: list[DashboardQuery] = []
    for panel in walk_panels(board.get("panels", [])):
        for target in panel.get("targets", []):
            queries.append(
                DashboardQuery(
                    path.name, f"panel {panel['title']!r} {target['refId']}", target["expr"]
                )
            )
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            expr = query["query"] if isinstance(query, dict) else query
            queries.append(DashboardQuery(path.name, f"variable ${variable['name']}", expr))
    return queries
