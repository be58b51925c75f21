"""Fixtures of the operations-kit tests: promtool and prometheus, and the workload server."""

from __future__ import annotations

import os
import signal
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gooddata_flight_server.testing import to_toml
from tests import waiting
from tests.conftest import CLI, REPO, ServerProcess
from tests.ops import prometheus_tools, workload

_T = TypeVar("_T")

Samples = dict[str, list[tuple[dict[str, str], float]]]
"""A scrape: sample name -> [(labels, value)]."""


def poll(what: str, probe: Callable[[], _T | None], timeout: float = 20.0) -> _T:
    """Ask ``probe`` until it returns something truthy, and return that; fail after ``timeout`` seconds."""
    value: _T = waiting.wait_until(probe, timeout, what)
    return value


def _binary(name: str) -> Path:
    path = prometheus_tools.find(name)
    if path is not None:
        return path
    message = f"{name} not found. {prometheus_tools.HOW_TO_GET}"
    if prometheus_tools.required():
        pytest.fail(f"{message} ({prometheus_tools.REQUIRE_ENV} is set)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def promtool() -> Path:
    return _binary("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> Path:
    return _binary("prometheus")


@dataclass(frozen=True)
class WorkloadServer:
    location: str
    metrics_url: str
    metrics_target: str  # host:port, as Prometheus names the instance

    def scrape(self) -> Samples:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            text = response.read().decode()
        samples: Samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
        return samples

    def run_workload(self) -> None:
        workload.run_workload(self.location)


@pytest.fixture(scope="module")
def workload_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkloadServer]:
    """The workload service, started by the CLI in a process of its own (so its metrics are its own)."""
    config = tmp_path_factory.mktemp("workload") / "server.toml"
    config.write_text(to_toml(workload.settings()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOODDATA_FLIGHT_")}
    args = [*CLI, "start", "--methods-provider", "tests.ops.workload", "--config", str(config)]
    server = ServerProcess(args, REPO, env)
    try:
        metrics_port = int(server.wait_for_event("metrics_listening")["port"])
        location = server.wait_for_event("server_started")["location"]
        yield WorkloadServer(
            location, f"http://127.0.0.1:{metrics_port}/metrics", f"127.0.0.1:{metrics_port}"
        )
        server.signal(signal.SIGTERM)
        assert server.wait(30) == 0, "".join(server.stderr_lines)
    finally:
        server.stop()
