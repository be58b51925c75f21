"""The Kubernetes manifests: they parse, and their probes, ports, environment and limits agree with
the configuration the replicas run with."""

from __future__ import annotations

import re
from pathlib import Path

from examples.sql_service.config import SqlServiceConfig

from tests.deploy.conftest import (
    DEPLOY,
    K8S,
    SAMPLE_POD_IP,
    ContainerSettings,
    container,
    container_port,
    env_value,
    manifests,
    sample_config_default,
)


def _bytes(size: str) -> int:
    """A Kubernetes quantity (2Gi, 512Mi) or a DuckDB size (1GB, 512MB) in bytes."""
    match = re.fullmatch(r"(\d+)\s*(Ki|Mi|Gi|KB|MB|GB)?", size.strip())
    assert match, size
    units = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "KB": 10**3, "MB": 10**6, "GB": 10**9}
    return int(match.group(1)) * units[match.group(2)]


def test_manifests_parse_and_kustomization_lists_them() -> None:
    """Every manifest parses; the kustomization lists exactly the other files."""
    docs = manifests()
    assert set(docs) == {"ConfigMap", "Deployment", "Service", "Kustomization"}
    listed = set(docs["Kustomization"]["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_configmap_is_the_container_config() -> None:
    """The ConfigMap carries deploy/server.toml word for word (the file the image bakes in)."""
    assert manifests()["ConfigMap"]["data"]["server.toml"] == (DEPLOY / "server.toml").read_text()


def test_environment_variables_are_real_settings(container_settings: ContainerSettings) -> None:
    """Each env variable of the Deployment names a setting, which the loaded configuration picks up."""
    settings = container_settings.settings
    for name, value in container_settings.env.items():
        section, _, key = name.removeprefix("GOODDATA_FLIGHT_").lower().partition("__")
        assert name.startswith("GOODDATA_FLIGHT_") and section and key, name
        assert settings.get(f"{section}.{key}") == env_value(value), name
    config = container_settings.config
    assert config.advertise_host == SAMPLE_POD_IP
    assert config.otel_config.service_instance_id is not None
    assert settings.get("enumerated_tokens.tokens") == ["token-from-the-secret"]


def test_replicas_listen_on_all_interfaces_with_token_auth(container_settings: ContainerSettings) -> None:
    """In a pod the server, health and metrics listen on 0.0.0.0, and calls need a token."""
    config = container_settings.config
    assert config.listen_host == config.health_check_host == config.metrics_host == "0.0.0.0"
    assert config.authentication_method.value == "token"


def test_probes_use_the_health_endpoints(container_settings: ContainerSettings) -> None:
    """Readiness probes /ready and liveness /live on the configured health port."""
    health_port = container_settings.config.health_check_port
    readiness = container()["readinessProbe"]["httpGet"]
    liveness = container()["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/ready"
    assert liveness["path"] == "/live"
    assert container_port(readiness["port"]) == container_port(liveness["port"]) == health_port


def test_prometheus_annotations_match_the_metrics_port(container_settings: ContainerSettings) -> None:
    """The pod template asks Prometheus to scrape /metrics on the configured metrics port."""
    annotations = manifests()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == container_settings.config.metrics_port
    assert container_port("metrics") == container_settings.config.metrics_port


def test_ports_agree_with_the_config_and_sample_config(container_settings: ContainerSettings) -> None:
    """Container ports = the ports the config sets = the defaults sample-config.toml documents."""
    config = container_settings.config
    assert container_port("flight") == config.listen_port == sample_config_default("listen_port")
    assert container_port("health") == config.health_check_port == sample_config_default("health_check_port")
    assert container_port("metrics") == config.metrics_port == sample_config_default("metrics_port")


def test_service_routes_to_the_flight_port(container_settings: ContainerSettings) -> None:
    """The Service selects the pods and forwards its port to the Flight port."""
    docs = manifests()
    service = docs["Service"]["spec"]
    pod_labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= pod_labels.items()
    assert docs["Deployment"]["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (port,) = service["ports"]
    assert container_port(port["targetPort"]) == container_settings.config.listen_port


def test_grace_period_outlasts_the_drain(container_settings: ContainerSettings) -> None:
    """terminationGracePeriodSeconds is longer than shutdown_timeout_sec, so drains complete."""
    grace = manifests()["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > container_settings.config.shutdown_timeout_sec


def test_config_file_and_data_dir_are_mounted(container_settings: ContainerSettings) -> None:
    """The --config file comes from the ConfigMap volume; the data directory is a writable volume."""
    spec = manifests()["Deployment"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container()["volumeMounts"]}
    args = container()["args"]
    config_file = Path(args[args.index("--config") + 1])
    config_mount = mounts[str(config_file.parent)]
    assert volumes[config_mount["name"]]["configMap"]["name"] == manifests()["ConfigMap"]["metadata"]["name"]
    assert config_file.name in manifests()["ConfigMap"]["data"]
    data_dir = SqlServiceConfig.from_settings(container_settings.settings).data_dir
    data_mount = mounts[str(data_dir)]
    assert not data_mount.get("readOnly", False)
    assert "emptyDir" in volumes[data_mount["name"]] or "persistentVolumeClaim" in volumes[data_mount["name"]]


def test_resources_and_security(container_settings: ContainerSettings) -> None:
    """Requests and limits are set, DuckDB's memory limit fits the container's, it runs unprivileged."""
    resources = container()["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]
    duckdb_limit = SqlServiceConfig.from_settings(container_settings.settings).memory_limit
    assert duckdb_limit is not None
    assert _bytes(duckdb_limit) < _bytes(resources["limits"]["memory"])
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0
    assert container()["securityContext"]["allowPrivilegeEscalation"] is False
