"""The Prometheus Operator and Grafana manifests of deploy/k8s/monitoring: they scrape what the
Deployment exposes, and carry the alert rules and the dashboard of the operations kit unchanged."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.deploy import monitoring_manifests as wrappers
from tests.deploy.conftest import K8S, ContainerSettings, container_port, manifests

MONITORING = K8S / "monitoring"


def _monitoring() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted(MONITORING.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] not in docs, f"{doc['kind']} appears twice"
            docs[doc["kind"]] = doc | {"_file": path.name}
    return docs


def test_monitoring_is_a_kustomization_of_its_own() -> None:
    """deploy/k8s/monitoring lists its manifests; deploy/k8s leaves them out (the CRDs may be missing)."""
    docs = _monitoring()
    assert set(docs) == {"Kustomization", "PodMonitor", "PrometheusRule", "ConfigMap"}
    listed = set(docs["Kustomization"]["resources"])
    assert listed == {p.name for p in MONITORING.glob("*.yaml")} - {"kustomization.yaml"}
    service_resources = manifests()["Kustomization"]["resources"]
    assert not any("monitoring" in resource for resource in service_resources)
    for kind in ("PodMonitor", "PrometheusRule"):
        assert docs[kind]["apiVersion"] == "monitoring.coreos.com/v1"
    for kind, doc in docs.items():
        if kind != "Kustomization":
            assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "gooddata-flight-server", kind


def test_podmonitor_scrapes_every_replica_on_the_metrics_port(container_settings: ContainerSettings) -> None:
    """The PodMonitor scrapes the pods on the configured metrics port and path, as job sql-service."""
    spec = _monitoring()["PodMonitor"]["spec"]
    pod = manifests()["Deployment"]["spec"]["template"]["metadata"]
    assert spec["selector"]["matchLabels"].items() <= pod["labels"].items()
    (endpoint,) = spec["podMetricsEndpoints"]
    assert container_port(endpoint["port"]) == container_settings.config.metrics_port
    assert str(container_port(endpoint["port"])) == pod["annotations"]["prometheus.io/port"]
    assert endpoint["path"] == pod["annotations"]["prometheus.io/path"] == "/metrics"
    assert pod["labels"][spec["jobLabel"]] == "sql-service"


def test_prometheus_rule_carries_the_rules_file() -> None:
    """The PrometheusRule's spec is deploy/prometheus/gdfs-alerts.yaml, group for group."""
    rule = _monitoring()["PrometheusRule"]
    assert rule["spec"] == yaml.safe_load(wrappers.RULES.read_text())


def test_dashboard_configmap_carries_the_dashboard() -> None:
    """The ConfigMap holds the dashboard file's text and the label Grafana's sidecar loads."""
    configmap = _monitoring()["ConfigMap"]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["data"] == {wrappers.DASHBOARD_KEY: wrappers.DASHBOARD.read_text()}
    assert json.loads(configmap["data"][wrappers.DASHBOARD_KEY])["uid"] == "gdfs-overview"


def test_wrappers_are_written_by_make_monitoring_manifests() -> None:
    """The two wrapping manifests are exactly what `make monitoring-manifests` writes."""
    for path, text in (
        (wrappers.PROMETHEUS_RULE, wrappers.prometheus_rule()),
        (wrappers.DASHBOARD_CONFIGMAP, wrappers.dashboard_configmap()),
    ):
        assert path.read_text() == text, f"{path.name} is stale: run `make monitoring-manifests`"
