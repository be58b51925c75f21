"""FlexConnect servers for the compatibility tests: this package's CLI, run from the compat venv."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow.flight as flight
import pytest

import gooddata_flight_server as gf
from tests.compat.environment import CompatEnvironment, ensure_environment
from tests.conftest import ServerProcess
from tests.waiting import wait_until

FUNCTIONS = Path(__file__).resolve().parent / "flexconnect_functions"
POLLING = flight.FlightCallOptions(headers=[(b"x-quiver-pollable", b"true")])
"""FlexConnect answers a GetFlightInfo with this header through its polling extension."""


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return orjson.dumps(value).decode()  # a JSON string is a valid TOML basic string
    return "[" + ", ".join(_toml(v) for v in value) + "]"


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class FlexConnectServer:
    """``gooddata-flight-server start --methods-provider gooddata_flexconnect`` from the compat venv,
    on 127.0.0.1 port 0; the real port comes from the ``server_started`` log line."""

    def __init__(
        self,
        environment: CompatEnvironment,
        workdir: Path,
        environ: dict[str, str] | None = None,
        **flexconnect: Any,
    ) -> None:
        self.records = workdir / "records"
        self.records.mkdir(parents=True)
        config = write_config(
            workdir / "flexconnect.toml",
            {
                "server": {"listen_host": "127.0.0.1", "listen_port": 0, "advertise_host": "127.0.0.1"},
                "flexconnect": {"functions": ["compat_functions"], **flexconnect},
                "compat_functions": {"record_dir": str(self.records)},
            },
        )
        # Nothing of the test's own environment may leak into the server: no GOODDATA_FLIGHT_*
        # settings, no PYTHONPATH into the development venv; FlexConnect finds the functions module
        # through PYTHONPATH, as with the original package.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("GOODDATA_FLIGHT_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
        }
        env["PYTHONPATH"] = str(FUNCTIONS)
        env.update(environ or {})
        args = [str(environment.cli), "start", "--methods-provider", "gooddata_flexconnect", "--config"]
        self.process = ServerProcess([*args, str(config)], cwd=workdir, env=env)
        try:
            started = self.process.wait_for_event("server_started", timeout=60)
        except BaseException:
            self.process.stop()
            raise
        self.port = int(started["port"])
        self.location = str(started["location"])

    def client(self) -> flight.FlightClient:
        return flight.FlightClient(self.location)

    def mark(self, token: str, what: str) -> Path:
        return self.records / f"{token}.{what}"

    def wait_for_mark(self, token: str, what: str, timeout: float = 15.0) -> None:
        path = self.mark(token, what)
        wait_until(path.exists, timeout, f"{path.name} (the server log follows)\n{self.log()}")

    def log(self) -> str:
        return "".join(self.process.stderr_lines[-40:])

    def stop(self) -> int:
        """SIGTERM, and a kill when the server does not stop in time; returns the exit code."""
        if self.process.proc.poll() is None:
            self.process.signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.stop()
        return self.process.proc.wait()


def token() -> str:
    return uuid.uuid4().hex


def invocation(function: str, **parameters: Any) -> flight.FlightDescriptor:
    """The command FlexConnect expects: the function's name and its parameters, as JSON."""
    return flight.FlightDescriptor.for_command(
        orjson.dumps({"functionName": function, "parameters": parameters})
    )


def error_info(e: pytest.ExceptionInfo[flight.FlightError]) -> gf.ErrorInfo:
    return gf.ErrorInfo.from_pyarrow_error(e.value)


@pytest.fixture(scope="session")
def compat_environment() -> CompatEnvironment:
    """The compat venv, brought up to date once per run (``make test`` has done it already)."""
    return ensure_environment()


@pytest.fixture(scope="module")
def start_flexconnect(
    compat_environment: CompatEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., FlexConnectServer]]:
    """Start FlexConnect servers (keywords go to the ``[flexconnect]`` section of the config file,
    ``environ`` to the server's environment); all stopped at the end."""
    started: list[FlexConnectServer] = []

    def _start(environ: dict[str, str] | None = None, **flexconnect: Any) -> FlexConnectServer:
        workdir = tmp_path_factory.mktemp("flexconnect")
        server = FlexConnectServer(compat_environment, workdir, environ, **flexconnect)
        started.append(server)
        return server

    yield _start
    for server in started:
        with contextlib.suppress(Exception):
            server.stop()
