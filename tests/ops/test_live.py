"""The kit against a live server after a scripted workload: every metric and label the dashboard and
the alert rules query is exported, and a real Prometheus scraping the server evaluates every
dashboard query and every rule without error, the workload showing in the panels."""

from __future__ import annotations

import re
from pathlib import Path

from tests.ops import kit
from tests.ops.conftest import Samples, WorkloadServer, poll
from tests.ops.prometheus import Prometheus, running_prometheus
from tests.ops.promql import Selector, groupings, substitute

JOB = "gdfs-workload"

# (sample name, labels): what the scripted workload must move, so that the checks below look at a
# server that did everything the kit watches
WORKLOAD_MOVES = [
    ("gdfs_rpc_requests_total", {"method": "GetFlightInfo", "outcome": "ok"}),
    ("gdfs_rpc_requests_total", {"method": "GetFlightInfo", "outcome": "server_error"}),
    ("gdfs_rpc_requests_total", {"method": "GetFlightInfo", "outcome": "unavailable"}),
    ("gdfs_rpc_requests_total", {"method": "DoGet", "outcome": "ok"}),
    ("gdfs_rpc_requests_total", {"method": "DoPut", "outcome": "ok"}),
    ("gdfs_rpc_requests_total", {"method": "DoAction", "outcome": "ok"}),
    ("gdfs_rpc_requests_total", {"method": "DoAction", "outcome": "internal"}),
    ("gdfs_rpc_requests_total", {"method": "ListFlights", "outcome": "unauthenticated"}),
    ("gdfs_rpc_requests_total", {"method": "ListFlights", "outcome": "internal"}),
    ("gdfs_rpc_requests_total", {"method": "ListFlights", "outcome": "not_implemented"}),
    ("gdfs_rpc_duration_seconds_count", {"method": "DoGet"}),
    ("gdfs_rpc_sent_rows_total", {"method": "DoGet"}),
    ("gdfs_rpc_sent_bytes_total", {"method": "DoGet"}),
    ("gdfs_rpc_received_rows_total", {"method": "DoPut"}),
    ("gdfs_rpc_received_bytes_total", {"method": "DoPut"}),
    ("gdfs_rpc_received_batches_total", {"method": "DoPut"}),
    ("gdfs_task_rejected_total", {"reason": "queue_full"}),
    ("gdfs_task_completed_total", {}),
    ("gdfs_task_error_total", {}),
    ("gdfs_task_cancelled_total", {}),
    ("gdfs_task_wait_count", {}),
    ("gdfs_task_duration_count", {}),
    ("gdfs_task_e2e_duration_count", {}),
    ("gdfs_auth_failures_total", {"reason": "missing_token"}),
    ("gdfs_auth_failures_total", {"reason": "invalid_token"}),
    ("gdfs_auth_failures_total", {"reason": "strategy_error"}),
    ("gdfs_malloc_trim_count", {}),
]

_LITERALS = re.compile(r"[\w:.-]+(?:\|[\w:.-]+)*")


def _value(samples: Samples, name: str, labels: dict[str, str]) -> float:
    return sum(
        value for sample_labels, value in samples.get(name, []) if labels.items() <= sample_labels.items()
    )


def _run_workload_and_scrape(server: WorkloadServer) -> tuple[Samples, Samples]:
    """Scrapes before and after one workload run (after: once housekeeping has run since)."""
    before = server.scrape()
    server.run_workload()
    trims = _value(before, "gdfs_malloc_trim_count", {})

    def trimmed_since() -> Samples | None:
        samples = server.scrape()
        return samples if _value(samples, "gdfs_malloc_trim_count", {}) > trims else None

    return before, poll("a housekeeping run after the workload", trimmed_since)


def _check_selector(selector: Selector, samples: Samples, where: str) -> list[str]:
    """What is wrong with a selector against a scrape: a missing metric, label or label value."""
    if selector.metric in kit.PROMETHEUS_METRICS:
        return []
    if selector.metric not in samples:
        return [f"{where}: {selector.metric} is not exported"]
    problems = []
    label_sets = [labels for labels, _ in samples[selector.metric]]
    for matcher in selector.matchers:
        if matcher.label in kit.TARGET_LABELS:
            continue
        values = {labels[matcher.label] for labels in label_sets if matcher.label in labels}
        if not values:
            problems.append(f"{where}: {selector.metric} has no label {matcher.label!r}")
            continue
        if not _LITERALS.fullmatch(matcher.value):
            continue  # a real regular expression: nothing literal to look for
        for literal in matcher.value.split("|"):
            if literal not in values:
                problems.append(
                    f"{where}: {selector.metric} has no {matcher.label}={literal!r} (it has {sorted(values)})"
                )
    return problems


def _check_groupings(query: kit.Query, samples: Samples) -> list[str]:
    """Labels of by/on/group_left lists exist on the metrics of the query (or Prometheus adds them)."""
    metrics = [s.metric for s in query.selectors]
    known = set(kit.TARGET_LABELS)
    for metric in metrics:
        for labels, _ in samples.get(metric, []):
            known |= labels.keys()
    problems = []
    for grouping in groupings(query.expr):
        for label in grouping.labels:
            if label not in known:
                problems.append(f"{query.where}: {grouping.keyword} ({label}), a label none of {metrics} has")
    return problems


def test_every_queried_metric_is_exported_with_its_labels(workload_server: WorkloadServer) -> None:
    """After the workload, every queried metric is exported with the labels and values the PromQL uses."""
    before, after = _run_workload_and_scrape(workload_server)
    unmoved = [
        (n, labels) for n, labels in WORKLOAD_MOVES if _value(after, n, labels) <= _value(before, n, labels)
    ]
    assert not unmoved, f"the workload did not move {unmoved}"

    queries = kit.all_queries()
    problems = []
    for query in queries:
        assert query.selectors, f"{query.where}: no metric found in {query.expr!r}"
        for selector in query.selectors:
            problems += _check_selector(selector, after, query.where)
        problems += _check_groupings(query, after)
    assert not problems, "\n".join(problems)
    queried = {s.metric for q in queries for s in q.selectors}
    assert kit.KIT_METRICS - queried == set()


def _series(prometheus: Prometheus, expr: str) -> dict[frozenset[tuple[str, str]], float]:
    return {frozenset(r["metric"].items()): float(r["value"][1]) for r in prometheus.query(expr)}


def _panel_query(title: str, values: dict[str, str]) -> str:
    (panel,) = [p for p in kit.panels() if p["title"] == title]
    (target,) = panel["targets"]
    return substitute(target["expr"], values)


def _rules_evaluated(prometheus: Prometheus) -> list[dict[str, object]] | None:
    rules = [rule for group in prometheus.get("rules")["groups"] for rule in group["rules"]]
    done = all(not str(rule["lastEvaluation"]).startswith("0001-") for rule in rules)
    return rules if rules and done else None


def test_prometheus_evaluates_every_query(
    workload_server: WorkloadServer, prometheus_binary: Path, tmp_path: Path
) -> None:
    """A real Prometheus evaluates every dashboard query and rule; selectors find series; panels move."""
    target = workload_server.metrics_target
    values = kit.grafana_values(JOB, target)
    with running_prometheus(prometheus_binary, tmp_path, JOB, [target], [kit.RULES]) as prometheus:
        prometheus.wait_for("the first scrape", lambda: prometheus.query(f'up{{job="{JOB}"}} == 1'))
        workload_server.run_workload()
        failures = _value(workload_server.scrape(), "gdfs_auth_failures_total", {"reason": "strategy_error"})
        prometheus.wait_for(
            "a scrape after the workload",
            lambda: prometheus.query(f'gdfs_auth_failures_total{{reason="strategy_error"}} >= {failures}'),
        )

        for query in kit.dashboard_queries():
            prometheus.query(substitute(query.expr, values))  # raises with Prometheus's error
        empty = [
            f"{query.where}: {selector}"
            for query in kit.all_queries()
            for selector in query.selectors
            if not prometheus.query(substitute(str(selector), values))
        ]
        assert not empty, "selectors without series:\n" + "\n".join(empty)
        for name, selector, label in kit.label_values_queries():
            offered = prometheus.get(f"label/{label}/values", **{"match[]": substitute(selector, values)})
            assert values[name] in offered, (name, offered)

        requests = _series(prometheus, _panel_query("Requests by method and outcome", values))
        for method, outcome in [("DoGet", "ok"), ("GetFlightInfo", "unavailable"), ("DoAction", "internal")]:
            assert requests.get(frozenset({("method", method), ("outcome", outcome)}), 0) > 0, requests
        refusals = _series(prometheus, _panel_query("Task refusals by reason", values))
        assert refusals[frozenset({("reason", "queue_full")})] > 0, refusals
        auth = _series(prometheus, _panel_query("Authentication failures by reason", values))
        for reason in ("missing_token", "invalid_token", "strategy_error"):
            assert auth[frozenset({("reason", reason)})] > 0, auth
        (ratio,) = _series(prometheus, _panel_query("Error ratio", values)).values()
        assert 0 < ratio < 1

        for query in kit.rule_queries():
            prometheus.query(query.expr)
        rules = prometheus.wait_for("every rule evaluated once", lambda: _rules_evaluated(prometheus))
        assert sorted(str(rule["name"]) for rule in rules) == sorted(rule["alert"] for rule in kit.alerts())
        unhealthy = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"]
        assert not unhealthy, unhealthy
