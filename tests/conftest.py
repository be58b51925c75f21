"""Shared fixtures: log capture through a real logging config, free ports, CLI subprocesses."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
CLI = [sys.executable, "-m", "gooddata_flight_server"]


def free_port() -> int:
    """A port that was free a moment ago: only for external tools (Prometheus) that cannot bind
    port 0 and tell which port they got; servers of ours bind 0 and log their port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LogFile:
    """A logging ini that writes to a file, and a reader of the JSON lines written there."""

    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "server.log"
        self.ini = tmp / "logging.ini"
        self.ini.write_text(
            "[loggers]\nkeys=root\n\n[handlers]\nkeys=file\n\n[formatters]\nkeys=\n\n"
            "[logger_root]\nlevel=DEBUG\nhandlers=file\n\n"
            f"[handler_file]\nclass=FileHandler\nargs=({str(self.path)!r}, 'a')\n"
        )

    def lines(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == name]


@pytest.fixture(autouse=True)
def _no_server_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings a developer exported (GOODDATA_FLIGHT_*) must not change what the tests see."""
    for name in list(os.environ):
        if name.startswith("GOODDATA_FLIGHT_"):
            monkeypatch.delenv(name)


@pytest.fixture
def log_file(tmp_path: Path) -> LogFile:
    return LogFile(tmp_path)


_CONSOLE_LINE = re.compile(r"^\S+ \[\s*\w+\s*\] (?P<event>\S+)")
_CONSOLE_FIELD = re.compile(r"(?P<key>\w+)=(?P<value>\S+)")


def _parse_log_line(line: str) -> dict[str, Any]:
    """A JSON log line as a dict; a dev-log console line as ``{"event": ..., "raw": line}`` plus
    its ``key=value`` fields (digits as int)."""
    try:
        record = json.loads(line)
    except ValueError:
        match = _CONSOLE_LINE.match(line)
        if not match:
            return {}
        fields: dict[str, Any] = {
            m["key"]: int(m["value"]) if m["value"].isdigit() else m["value"]
            for m in _CONSOLE_FIELD.finditer(line, match.end())
        }
        return {**fields, "event": match["event"], "raw": line}
    return record if isinstance(record, dict) else {}


class ServerProcess:
    """A CLI or script server in a subprocess, followed through its JSON log lines on stderr."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr_lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_for_event(self, event: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"process ended before '{event}':\n{''.join(self.stderr_lines)}")
            record = _parse_log_line(line)
            if record.get("event") == event:
                return record
        raise AssertionError(f"no '{event}' within {timeout} s:\n{''.join(self.stderr_lines)}")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def spawn() -> Iterator[Callable[..., ServerProcess]]:
    """Start server subprocesses that are always killed at the end of the test."""
    started: list[ServerProcess] = []

    def _spawn(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> ServerProcess:
        proc = ServerProcess(args, cwd, {**os.environ, **(env or {})})
        started.append(proc)
        return proc

    yield _spawn
    for proc in started:
        proc.stop()


def run_cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
