"""The PromQL reader the kit's tests rely on: it finds the metrics, matchers and grouping labels."""

from __future__ import annotations

import pytest

from tests.ops.promql import Grouping, Matcher, PromQLError, Selector, groupings, selectors, substitute


def test_selectors_functions_and_aggregations() -> None:
    """Metric names are told from functions and aggregations; range brackets are skipped."""
    expr = (
        "histogram_quantile(0.99, sum by (job, le) ("
        'rate(gdfs_rpc_duration_seconds_bucket{method!~"DoGet|DoPut"}[$__rate_interval]))) > 10'
        " and on (job) count by (job) (max_over_time(gdfs_rpc_in_flight[1h]))"
    )
    assert selectors(expr) == [
        Selector("gdfs_rpc_duration_seconds_bucket", (Matcher("method", "!~", "DoGet|DoPut"),)),
        Selector("gdfs_rpc_in_flight", ()),
    ]
    assert groupings(expr) == [
        Grouping("by", ("job", "le")),
        Grouping("on", ("job",)),
        Grouping("by", ("job",)),
    ]


def test_binary_operators_numbers_offsets_and_group_modifiers() -> None:
    """Numbers, durations after offset, bool, group_left with and without labels are not metrics."""
    expr = (
        "predict_linear(process_resident_memory_bytes[1h], 4 * 3600) > bool 1.5e0 * up offset 5m"
        " / on (job) group_left sum without (reason) (x_total) / ignoring (a, b) group_right (c) y"
    )
    assert [s.metric for s in selectors(expr)] == ["process_resident_memory_bytes", "up", "x_total", "y"]
    assert groupings(expr) == [
        Grouping("on", ("job",)),
        Grouping("group_left", ()),
        Grouping("without", ("reason",)),
        Grouping("ignoring", ("a", "b")),
        Grouping("group_right", ("c",)),
    ]


def test_matchers_with_quotes_escapes_and_a_name_matcher() -> None:
    """Strings in any quoting, escaped quotes and a `{__name__="..."}` selector."""
    expr = """{__name__="m_total", a='x', b="say \\"hi\\""} + n{c=~`.+`,}"""
    assert selectors(expr) == [
        Selector("m_total", (Matcher("a", "=", "x"), Matcher("b", "=", 'say "hi"'))),
        Selector("n", (Matcher("c", "=~", ".+"),)),
    ]


@pytest.mark.parametrize("expr", ['{job="x"}', "rate(x[5m]) @ 100", 'x{job="a" "b"}', "x ~ y"])
def test_what_it_does_not_understand_is_an_error(expr: str) -> None:
    """A selector without a name, the @ modifier, broken matchers and unknown characters raise."""
    with pytest.raises(PromQLError):
        selectors(expr)


def test_substitute_grafana_variables() -> None:
    """$name and ${name} are replaced; a variable without a value is an error."""
    values = {"job": "svc", "instance": "a:1", "__rate_interval": "1m"}
    assert substitute('x{job=~"$job", instance=~"${instance}"}[$__rate_interval]', values) == (
        'x{job=~"svc", instance=~"a:1"}[1m]'
    )
    with pytest.raises(PromQLError, match=r"\$interval"):
        substitute("rate(x[$interval])", values)
