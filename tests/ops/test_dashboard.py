"""The Grafana dashboard, read as Grafana would import it: a recent schema, a Prometheus data source
variable, job and instance variables from a gdfs metric, panels that filter by them and chart every
metric the kit promises."""

from __future__ import annotations

import pytest

from tests.ops import kit
from tests.ops.promql import substitute

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def test_dashboard_is_importable() -> None:
    """Top-level fields Grafana's import needs, a recent schemaVersion, no instance-specific id."""
    board = kit.dashboard()
    assert board["schemaVersion"] >= 39  # Grafana 11 and later
    assert board["id"] is None
    assert board["uid"] == "gdfs-overview" and board["title"]
    assert "__inputs" not in board, "data sources come from the variable, not from import inputs"
    assert board["time"]["from"].startswith("now-")


def test_variables_pick_data_source_job_and_instance() -> None:
    """datasource lists Prometheus sources; job, then instance within it, come from a gdfs metric."""
    variables = kit.variables()
    assert list(variables) == ["datasource", "job", "instance"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    queries = {name: (selector, label) for name, selector, label in kit.label_values_queries()}
    assert queries == {
        "job": ("gdfs_rpc_requests_total", "job"),
        "instance": ('gdfs_rpc_requests_total{job=~"$job"}', "instance"),
    }
    for name in ("job", "instance"):
        assert variables[name]["datasource"] == DATASOURCE
        assert variables[name]["definition"] == kit.variable_query(variables[name])
    assert variables["instance"]["multi"] and variables["instance"]["includeAll"]


def test_panels_use_the_datasource_variable_and_fit_the_grid() -> None:
    """Unique ids; each panel and query on ${datasource}; panels within 24 columns and not overlapping."""
    ids = [panel["id"] for panel in kit.panels()]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in kit.panels():
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"] and panel.get("description"), panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_dashboard_charts_every_kit_metric() -> None:
    """Every metric the kit promises is on a panel, and panels query only server, process and up series."""
    charted = {s.metric for q in kit.dashboard_queries() for s in q.selectors}
    assert kit.KIT_METRICS - charted == set()
    assert all(m.startswith(("gdfs_", "process_")) or m in kit.PROMETHEUS_METRICS for m in charted), charted


def test_every_panel_query_filters_by_job_and_instance() -> None:
    """Each selector of every panel matches job and instance against the variables, so they filter."""
    for query in kit.dashboard_queries():
        for selector in query.selectors:
            filters = {(m.label, m.op, m.value) for m in selector.matchers}
            wanted = {("job", "=~", "$job"), ("instance", "=~", "$instance")}
            assert wanted <= filters, f"{query.where}: {selector}"
        assert "[$__rate_interval]" in query.expr or "rate(" not in query.expr, query.where


@pytest.mark.parametrize("query", kit.all_queries(), ids=lambda q: q.where)
def test_every_query_names_its_metrics(query: kit.Query) -> None:
    """Each query yields the metrics it reads, and Grafana's variables are all it needs filled in."""
    assert query.selectors, query.expr
    assert "$" not in substitute(query.expr, kit.grafana_values("job", "host:1"))
