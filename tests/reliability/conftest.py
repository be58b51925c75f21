"""Helpers of the reliability suite: servers in-process or as CLI subprocesses, RSS, executor state."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow.flight as flight

from gooddata_flight_server.testing import running_server, to_toml
from tests import waiting
from tests.conftest import CLI, REPO, ServerProcess
from tests.reliability.service import ReliabilityMethods

WAIT = 30.0  # bound for what must happen; tests pass long before it


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll where no event exists to wait for (RSS, another process's state), with this suite's
    wider deadline."""
    waiting.wait_until(condition, timeout, what)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def action(client: flight.FlightClient, kind: str, body: bytes = b"", **options: Any) -> list[bytes]:
    call = flight.FlightCallOptions(**options) if options else None
    return [r.body.to_pybytes() for r in client.do_action(flight.Action(kind, body), call)]


def remote_state(client: flight.FlightClient) -> dict[str, int]:
    """The executor state of a server subprocess, through the service's ``state`` action."""
    state: dict[str, int] = orjson.loads(action(client, "state")[0])
    return state


def idle(state: dict[str, int], stored: bool = True) -> bool:
    """No task queued or running, no close pending and (unless ``stored`` is False) no outcome kept."""
    busy = state["queued"] or state["running"] or state["closing"]
    return not busy and (not stored or state["stored"] == 0)


@contextlib.contextmanager
def in_process(settings: dict[str, Any] | None = None) -> Iterator[tuple[Any, ReliabilityMethods]]:
    """A server in this process with the reliability service; yields it and the methods instance."""
    holder: list[ReliabilityMethods] = []

    def factory(ctx: Any) -> ReliabilityMethods:
        holder.append(ReliabilityMethods(ctx))
        return holder[0]

    with running_server(factory, settings or {}) as server:
        try:
            yield server, holder[0]
        finally:
            holder[0].release.set()  # never leave a hanging task behind


def start_cli_server(
    spawn: Callable[..., ServerProcess], tmp_path: Path, server_settings: dict[str, Any]
) -> tuple[ServerProcess, str]:
    """The reliability service through the real CLI in a subprocess; returns it and its URI."""
    config = tmp_path / "server.toml"
    settings = {"listen_port": 0, "advertise_host": "127.0.0.1", **server_settings}
    config.write_text(to_toml({"server": settings}))
    proc = spawn(
        [*CLI, "start", "--methods-provider", "tests.reliability.service", "--config", str(config)],
        cwd=REPO,
        env={"PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])},
    )
    port = proc.wait_for_event("server_started")["port"]
    return proc, f"grpc://127.0.0.1:{port}"
