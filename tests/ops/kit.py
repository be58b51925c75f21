"""The operations kit's files, read: the Grafana dashboard, the alert rules, their unit tests.

Also what the kit promises to show (:data:`KIT_METRICS`) and the values the tests put in for the
dashboard's variables.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO
from tests.ops.promql import Selector, selectors

DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "gdfs-overview.json"
RULES = DEPLOY / "prometheus" / "gdfs-alerts.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "gdfs-alerts.test.yaml"
RUNBOOK = DEPLOY / "prometheus" / "RUNBOOK.md"

KIT_METRICS = frozenset(
    {
        "gdfs_rpc_requests_total",
        "gdfs_rpc_duration_seconds_bucket",
        "gdfs_rpc_in_flight",
        "gdfs_rpc_sent_rows_total",
        "gdfs_rpc_sent_bytes_total",
        "gdfs_rpc_received_rows_total",
        "gdfs_rpc_received_bytes_total",
        "gdfs_task_queue",
        "gdfs_task_running",
        "gdfs_close_queue",
        "gdfs_task_results_stored",
        "gdfs_task_results_bytes",
        "gdfs_task_results_max_bytes",
        "gdfs_task_results_max_count",
        "gdfs_task_rejected_total",
        "gdfs_task_completed_total",
        "gdfs_task_error_total",
        "gdfs_task_cancelled_total",
        "gdfs_task_wait_sum",
        "gdfs_task_wait_count",
        "gdfs_task_duration_sum",
        "gdfs_task_duration_count",
        "gdfs_task_e2e_duration_sum",
        "gdfs_task_e2e_duration_count",
        "gdfs_auth_failures_total",
        "gdfs_arrow_pool_allocated_bytes",
        "gdfs_arrow_pool_peak_bytes",
        "process_resident_memory_bytes",
        "gdfs_malloc_trim_count",
        "gdfs_malloc_trim_sum",
        "gdfs_malloc_trim_error_total",
    }
)
"""Every metric the dashboard must chart (the issue's list, in exposition names)."""

PROMETHEUS_METRICS = frozenset({"up"})
"""Series Prometheus makes itself for each target rather than scrapes from it."""

TARGET_LABELS = frozenset({"job", "instance"})
"""Labels Prometheus attaches to every scraped series."""

ERROR_OUTCOMES = frozenset({"server_error", "internal", "error", "unavailable", "timed_out"})
"""The outcomes of gdfs_rpc_requests_total that the dashboard and the rules count as errors."""


@dataclass(frozen=True)
class Query:
    where: str  # "panel 'Calls in flight' A", "alert GdfsServerDown", "variable instance"
    expr: str

    @property
    def selectors(self) -> list[Selector]:
        return selectors(self.expr)


@functools.cache
def dashboard() -> dict[str, Any]:
    """The dashboard JSON, parsed once (do not modify)."""
    value = json.loads(DASHBOARD.read_text())
    assert isinstance(value, dict)
    return value


def panels() -> Iterator[dict[str, Any]]:
    """Every panel, those inside (collapsed) rows included."""
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])


def variables() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard()["templating"]["list"]}


def variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    return str(query["query"] if isinstance(query, dict) else query)


def dashboard_queries() -> list[Query]:
    """The PromQL of every panel target."""
    return [
        Query(f"panel {panel['title']!r} {target['refId']}", target["expr"])
        for panel in panels()
        for target in panel.get("targets", [])
    ]


def label_values_queries() -> list[tuple[str, str, str]]:
    """``(variable, series selector, label)`` of every ``label_values(selector, label)`` variable."""
    found = []
    for name, variable in variables().items():
        if variable["type"] != "query":
            continue
        text = variable_query(variable)
        assert text.startswith("label_values(") and text.endswith(")"), text
        selector, _, label = text.removeprefix("label_values(").removesuffix(")").rpartition(",")
        found.append((name, selector.strip(), label.strip()))
    return found


@functools.cache
def rules_file() -> dict[str, Any]:
    value = yaml.safe_load(RULES.read_text())
    assert isinstance(value, dict)
    return value


def alerts() -> list[dict[str, Any]]:
    return [rule for group in rules_file()["groups"] for rule in group["rules"]]


def rule_queries() -> list[Query]:
    return [Query(f"alert {rule['alert']}", rule["expr"]) for rule in alerts()]


def all_queries() -> list[Query]:
    """Every dashboard panel query, every variable's series selector and every alert expression."""
    variable_selectors = [Query(f"variable {name}", selector) for name, selector, _ in label_values_queries()]
    return dashboard_queries() + variable_selectors + rule_queries()


def grafana_values(job: str, instance: str) -> dict[str, str]:
    """What Grafana puts in for the dashboard's variables, for one job and one instance."""
    return {"job": job, "instance": instance, "__rate_interval": "1m", "datasource": "prometheus"}


def read(path: Path) -> Any:
    return yaml.safe_load(path.read_text())
