"""The two manifests of deploy/k8s/monitoring that wrap files of the operations kit, written from them.

``prometheusrule.yaml`` carries the groups of ``deploy/prometheus/gdfs-alerts.yaml`` and
``grafana-dashboard.yaml`` the text of ``deploy/grafana/gdfs-overview.json``: Kubernetes cannot
point at files of the repository (kustomize refuses files outside its directory), so the manifests
hold copies, and ``tests/deploy/test_monitoring.py`` keeps them equal. After changing the rules or
the dashboard run ``make monitoring-manifests`` (``python -m tests.deploy.monitoring_manifests``).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "gdfs-alerts.yaml"
DASHBOARD = REPO / "deploy" / "grafana" / "gdfs-overview.json"
MONITORING = REPO / "deploy" / "k8s" / "monitoring"
PROMETHEUS_RULE = MONITORING / "prometheusrule.yaml"
DASHBOARD_CONFIGMAP = MONITORING / "grafana-dashboard.yaml"
DASHBOARD_KEY = DASHBOARD.name

_LABELS = """\
  labels:
    app.kubernetes.io/part-of: gooddata-flight-server
"""


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


def prometheus_rule() -> str:
    rules = RULES.read_text()
    groups = rules[rules.index("\ngroups:") + 1 :]  # the file's own header comment stays in the file
    return (
        "# The alert rules of deploy/prometheus/gdfs-alerts.yaml for the Prometheus Operator (written by\n"
        "# `make monitoring-manifests`; tests/deploy/test_monitoring.py keeps the two equal). Runbook:\n"
        "# deploy/prometheus/RUNBOOK.md. Your Prometheus picks up PrometheusRules by its ruleSelector: add\n"
        "# the label it selects (kube-prometheus-stack: release: <its Helm release>), see deploy/README.md.\n"
        "apiVersion: monitoring.coreos.com/v1\n"
        "kind: PrometheusRule\n"
        "metadata:\n"
        "  name: gooddata-flight-server\n"
        f"{_LABELS}"
        "spec:\n"
        f"{_indent(groups, 2)}"
    )


def dashboard_configmap() -> str:
    return (
        "# The Grafana dashboard deploy/grafana/gdfs-overview.json for Grafana's dashboard sidecar, which\n"
        '# loads every ConfigMap labelled grafana_dashboard: "1" (written by `make monitoring-manifests`;\n'
        "# tests/deploy/test_monitoring.py keeps the two equal).\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: gooddata-flight-server-dashboard\n"
        f"{_LABELS}"
        '    grafana_dashboard: "1"\n'
        "data:\n"
        f"  {DASHBOARD_KEY}: |\n"
        f"{_indent(DASHBOARD.read_text(), 4)}"
    )


def main() -> int:
    for path, text in ((PROMETHEUS_RULE, prometheus_rule()), (DASHBOARD_CONFIGMAP, dashboard_configmap())):
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
