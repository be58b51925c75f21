"""The deployment files, parsed: Dockerfile instructions, Kubernetes manifests, the container config."""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gooddata_flight_server._settings_load import load_settings
from gooddata_flight_server.settings import ServerConfig
from tests.conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # the server's own fallback: Dynaconf vendors tomli as tomllib
    from dynaconf.vendor import tomllib

__all__ = ["tomllib"]

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
SAMPLE_POD_IP = "10.1.2.3"
SAMPLE_POD_NAME = "sql-service-6f9c7d-abcde"
SAMPLE_TOKENS = '["token-from-the-secret"]'


@functools.cache
def manifests() -> dict[str, dict[str, Any]]:
    """Every document in deploy/k8s by kind (each kind appears once); parsed once, do not modify."""
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] not in docs, f"{doc['kind']} appears twice"
            docs[doc["kind"]] = doc | {"_file": path.name}
    return docs


def container() -> dict[str, Any]:
    (only,) = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(only)


def container_port(name_or_number: str | int) -> int:
    """A probe's or Service's port: a container port's name, or a number."""
    if isinstance(name_or_number, int):
        return name_or_number
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    return int(ports[name_or_number])


def sample_env_value(entry: dict[str, Any]) -> str:
    """What Kubernetes would put into an env variable of the Deployment."""
    if "value" in entry:
        return str(entry["value"])
    source = entry["valueFrom"]
    if "fieldRef" in source:
        return {"status.podIP": SAMPLE_POD_IP, "metadata.name": SAMPLE_POD_NAME}[
            source["fieldRef"]["fieldPath"]
        ]
    if "secretKeyRef" in source:
        return SAMPLE_TOKENS
    raise AssertionError(f"unexpected env source {source}")


@dataclass(frozen=True)
class ContainerSettings:
    settings: Any
    config: ServerConfig
    env: dict[str, str]


@pytest.fixture
def container_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ContainerSettings]:
    """The settings a replica runs with: the ConfigMap's TOML plus the Deployment's environment.

    (The root conftest already hides the developer's GOODDATA_FLIGHT_* variables.)"""
    env = {entry["name"]: sample_env_value(entry) for entry in container()["env"]}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "server.toml"
    path.write_text(manifests()["ConfigMap"]["data"]["server.toml"])
    settings, config = load_settings([path])
    yield ContainerSettings(settings, config, env)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        value = json.loads(self.args)
        assert isinstance(value, list), f"{self.keyword} is not in exec (JSON) form: {self.args}"
        return [str(v) for v in value]


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    text = (REPO / "Dockerfile").read_text()
    logical: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    instructions = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        instructions.append(Instruction(keyword.upper(), re.sub(r"\s+", " ", args).strip()))
    return instructions


def env_value(raw: str) -> Any:
    """An environment value as the server reads it: TOML when it parses as a TOML value, else text."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def sample_config_default(key: str) -> int:
    """The default of a [server] setting as sample-config.toml documents it (`# default: N`)."""
    text = (REPO / "sample-config.toml").read_text()
    match = re.search(rf"# default: (\d+)\n# env: GOODDATA_FLIGHT_SERVER__{key.upper()}\n", text)
    assert match, f"sample-config.toml documents no numeric default for {key}"
    return int(match.group(1))
