"""The alert rules: promtool accepts them and their unit tests, every alert is tested firing and not
firing, documented in the runbook, and counts the same outcomes as errors as the dashboard."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from gooddata_flight_server.observability.metrics import RPC_OUTCOMES
from tests.ops import kit
from tests.ops.promql import selectors


def _promtool(promtool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120
    )


def test_promtool_checks_the_rules(promtool: Path) -> None:
    """`promtool check rules` accepts the rules file and counts every alert in it."""
    result = _promtool(promtool, "check", "rules", str(kit.RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(kit.alerts())} rules found" in result.stdout, result.stdout


def test_promtool_unit_tests_pass(promtool: Path) -> None:
    """`promtool test rules` runs the unit tests next to the rules, and they pass."""
    result = _promtool(promtool, "test", "rules", str(kit.RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout


def _alert_tests() -> list[dict[str, object]]:
    suite = kit.read(kit.RULE_TESTS)
    assert suite["rule_files"] == [kit.RULES.name]
    return [case for test in suite["tests"] for case in test["alert_rule_test"]]


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    """Each alert has a unit-test case where it fires and one where it must stay quiet."""
    names = [rule["alert"] for rule in kit.alerts()]
    assert len(names) == len(set(names)), names
    cases = _alert_tests()
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert {case["alertname"] for case in cases} <= set(names)
    assert set(names) - firing == set(), "alerts never tested firing"
    assert set(names) - quiet == set(), "alerts never tested quiet"


def test_unit_tests_fail_when_a_firing_alert_is_not_expected(promtool: Path, tmp_path: Path) -> None:
    """With every firing expectation removed promtool fails, naming each alert: the cases do fire."""
    suite = kit.read(kit.RULE_TESTS)
    for test in suite["tests"]:
        for case in test["alert_rule_test"]:
            case["exp_alerts"] = []
    shutil.copy(kit.RULES, tmp_path / kit.RULES.name)
    broken = tmp_path / "broken.test.yaml"
    broken.write_text(yaml.safe_dump(suite))
    result = _promtool(promtool, "test", "rules", str(broken))
    assert result.returncode != 0
    failed = set(re.findall(r"alertname: (\w+)", result.stdout + result.stderr))
    assert failed == {rule["alert"] for rule in kit.alerts()}, result.stdout


def _runbook_anchors() -> set[str]:
    """GitHub's anchors of the runbook's headings (lower case, spaces to dashes, punctuation dropped)."""
    headings = re.findall(r"^#+ (.+)$", kit.RUNBOOK.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_every_alert_is_documented() -> None:
    """Each alert has a severity, a duration, a summary, a description and a runbook section."""
    anchors = _runbook_anchors()
    for rule in kit.alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        path, _, anchor = annotations["runbook"].partition("#")
        assert path == str(kit.RUNBOOK.relative_to(kit.REPO)), name
        assert anchor == name.lower() and anchor in anchors, f"{name}: no runbook section #{anchor}"


def _error_outcomes(expr: str) -> set[str] | None:
    for selector in selectors(expr):
        for matcher in selector.matchers:
            if selector.metric == "gdfs_rpc_requests_total" and matcher.label == "outcome":
                assert matcher.op == "=~", expr
                return set(matcher.value.split("|"))
    return None


def test_rules_and_dashboard_count_the_same_outcomes_as_errors() -> None:
    """The error ratio of the rules and of every dashboard panel counts the same declared outcomes."""
    queries = kit.rule_queries() + kit.dashboard_queries()
    counted = {q.where: found for q in queries if (found := _error_outcomes(q.expr)) is not None}
    assert any(where.startswith("alert") for where in counted) and len(counted) >= 3, counted
    assert all(found == kit.ERROR_OUTCOMES for found in counted.values()), counted
    assert kit.ERROR_OUTCOMES - set(RPC_OUTCOMES) == set()
    assert {"ok", "cancelled", "bad_request", "not_implemented"}.isdisjoint(kit.ERROR_OUTCOMES)
