"""The CLI as users run it: real subprocesses, exit codes, one-line errors, signals."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.flight as flight
import pytest

import gooddata_flight_server as gf
from tests.conftest import CLI, EXAMPLES, ServerProcess, run_cli

SERVICE = """
import os
import time
import structlog
import pyarrow
import pyarrow.flight
import gooddata_flight_server as gf

log = structlog.get_logger("svc")


class Methods(gf.FlightServerMethods):
    def __init__(self, ctx):
        self.ctx = ctx

    def do_action(self, context, action):
        if action.type == "work":
            log.info("work_started")
            body = action.body.to_pybytes()
            if body == b"until-released":  # until the test creates ./release (30 s at most)
                deadline = time.monotonic() + 30
                while not os.path.exists("release") and time.monotonic() < deadline:
                    time.sleep(0.01)
            else:
                time.sleep(float(body or b"1"))
            return [b"work-done"]
        return [str(self.ctx.settings.get("svc.greeting")).encode()]


@gf.flight_server_methods
def factory(ctx):
    return Methods(ctx)
"""


def _write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def _env(port: int = 0, **extra: str) -> dict[str, str]:
    """Port 0: the server binds a free port and logs it (``server_started``)."""
    return {
        "GOODDATA_FLIGHT_SERVER__LISTEN_PORT": str(port),
        "GOODDATA_FLIGHT_SERVER__ADVERTISE_HOST": "127.0.0.1",
        **extra,
    }


def _assert_one_line_error(result: Any, *fragments: str) -> None:
    """Our error is one line; lines gRPC's C core logs by itself (bind failures) are not ours to remove."""
    lines = [line for line in result.stderr.splitlines() if not _GRPC_CORE_LOG.match(line)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gooddata-flight-server: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


_GRPC_CORE_LOG = re.compile(r"^(WARNING: All log messages before absl|[EWI]\d{4} )")


def _abandoned_call(port: int) -> None:
    """A long call whose server goes away under it: its error is expected and ignored."""
    with contextlib.suppress(flight.FlightError):
        _do_action(port, "work", b"60")


def _do_action(port: int, name: str, body: bytes = b"") -> list[bytes]:
    with flight.FlightClient(f"grpc://127.0.0.1:{port}") as client:
        return [r.body.to_pybytes() for r in client.do_action(flight.Action(name, body))]


@pytest.mark.parametrize("how", ["script", "cli"])
def test_seed_example_serves_data(how: str, spawn: Callable[..., ServerProcess]) -> None:
    """The seed README's first example runs unchanged as a script and via the CLI, and stops on SIGTERM."""
    if how == "script":
        args = [sys.executable, str(EXAMPLES / "my_service" / "main.py")]
    else:
        args = [*CLI, "start", "--methods-provider", "my_service.main"]
    proc = spawn(args, cwd=EXAMPLES, env=_env())
    port = proc.wait_for_event("server_started")["port"]
    with flight.FlightClient(f"grpc://127.0.0.1:{port}") as client:
        table = client.do_get(flight.Ticket(b"anything")).read_all()
    assert table.column("col1").to_pylist() == [1, 2, 3]
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    proc.wait_for_event("server_stopped")


def test_default_bind_is_loopback_17001(spawn: Callable[..., ServerProcess]) -> None:
    """Without configuration the server binds 127.0.0.1:17001."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 17001))
        except OSError:
            pytest.skip("port 17001 is in use on this machine")
    proc = spawn([*CLI, "start", "--methods-provider", "my_service.main"], cwd=EXAMPLES)
    event = proc.wait_for_event("flight_listening")
    assert event["uri"] == "grpc://127.0.0.1:17001"
    proc.signal(signal.SIGINT)
    assert proc.wait() == 0


def test_settings_from_several_config_files(tmp_path: Path, spawn: Callable[..., ServerProcess]) -> None:
    """--config takes several files; the service reads its own section from them."""
    _write(tmp_path, "svc", SERVICE)
    first = tmp_path / "server.toml"
    first.write_text('[server]\nlisten_port = 0\nadvertise_host = "127.0.0.1"\n[svc]\ngreeting = "one"\n')
    second = tmp_path / "svc.toml"
    second.write_text('[svc]\ngreeting = "hello"\n')
    proc = spawn(
        [*CLI, "start", "--methods-provider", "svc", "--config", str(first), str(second)], cwd=tmp_path
    )
    port = proc.wait_for_event("server_started")["port"]
    assert _do_action(port, "greet") == [b"hello"]
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_sigterm_lets_in_flight_call_finish(tmp_path: Path, spawn: Callable[..., ServerProcess]) -> None:
    """On SIGTERM an in-flight call completes, new calls get SHUTTING_DOWN, and the process exits 0."""
    _write(tmp_path, "svc", SERVICE)
    proc = spawn([*CLI, "start", "--methods-provider", "svc"], cwd=tmp_path, env=_env())
    port = proc.wait_for_event("server_started")["port"]
    outcome: list[Any] = []
    call = threading.Thread(target=lambda: outcome.append(_do_action(port, "work", b"until-released")))
    call.start()
    proc.wait_for_event("work_started")
    proc.signal(signal.SIGTERM)
    proc.wait_for_event("server_draining")
    with pytest.raises(flight.FlightUnavailableError) as caught:
        _do_action(port, "greet")
    assert gf.ErrorInfo.from_pyarrow_error(caught.value).code == gf.ErrorCode.SHUTTING_DOWN
    (tmp_path / "release").touch()  # the in-flight call finishes only now, while the server drains
    call.join(30)
    assert outcome == [[b"work-done"]]
    assert proc.wait() == 0


def test_drain_deadline_exits_zero_with_a_stuck_call(
    tmp_path: Path, spawn: Callable[..., ServerProcess]
) -> None:
    """A call outliving shutdown_timeout_sec is abandoned and the process still exits 0 promptly."""
    _write(tmp_path, "svc", SERVICE)
    env = _env(GOODDATA_FLIGHT_SERVER__SHUTDOWN_TIMEOUT_SEC="0.5")
    proc = spawn([*CLI, "start", "--methods-provider", "svc"], cwd=tmp_path, env=env)
    port = proc.wait_for_event("server_started")["port"]
    call = threading.Thread(target=_abandoned_call, args=(port,), daemon=True)
    call.start()
    proc.wait_for_event("work_started")
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    proc.wait_for_event("drain_deadline_exceeded")


def test_second_signal_forces_stop(tmp_path: Path, spawn: Callable[..., ServerProcess]) -> None:
    """A second SIGINT during the drain stops at once with exit code 1."""
    _write(tmp_path, "svc", SERVICE)
    proc = spawn([*CLI, "start", "--methods-provider", "svc"], cwd=tmp_path, env=_env())
    port = proc.wait_for_event("server_started")["port"]
    call = threading.Thread(target=_abandoned_call, args=(port,), daemon=True)
    call.start()
    proc.wait_for_event("work_started")
    proc.signal(signal.SIGINT)
    proc.wait_for_event("server_draining")
    proc.signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 1


@pytest.mark.parametrize(
    ("provider", "files", "fragments"),
    [
        ("no_such_module_xyz", {}, ["'no_such_module_xyz' not found"]),
        (
            "svc",
            {"svc": "import not_installed_dependency_xyz\n"},
            ["importing", "not_installed_dependency_xyz"],
        ),
        ("svc", {"svc": "raise RuntimeError('boom at import')\n"}, ["RuntimeError: boom at import"]),
        (
            "svc",
            {"svc": "def factory(ctx):\n    return None\n"},
            ["no function decorated with @flight_server_methods"],
        ),
        (
            "svc",
            {
                "svc": "import gooddata_flight_server as gf\n"
                "@gf.flight_server_methods\ndef one(ctx): pass\n"
                "@gf.flight_server_methods\ndef two(ctx): pass\n"
            },
            ["several", "one, two"],
        ),
        (
            "svc",
            {
                "svc": "import gooddata_flight_server as gf\n"
                "@gf.flight_server_methods\ndef f(ctx, extra): pass\n"
            },
            ["exactly one argument", "(ctx, extra)"],
        ),
        ("svc:missing", {"svc": "x = 1\n"}, ["has no attribute 'missing'"]),
        ("svc:x", {"svc": "x = 1\n"}, ["'svc:x' is not a function"]),
        ("not a module!", {}, ["invalid methods provider"]),
    ],
)
def test_methods_provider_errors(
    tmp_path: Path, provider: str, files: dict[str, str], fragments: list[str]
) -> None:
    """Every way of naming a bad methods provider gets its own one-line message and exit 2."""
    for name, source in files.items():
        _write(tmp_path, name, source)
    result = run_cli(["start", "--methods-provider", provider], cwd=tmp_path)
    assert result.returncode == 2
    _assert_one_line_error(result, *fragments)


def test_named_factory_is_used(tmp_path: Path, spawn: Callable[..., ServerProcess]) -> None:
    """MODULE:FUNCTION picks that function even without the decorator."""
    _write(tmp_path, "svc", SERVICE.replace("@gf.flight_server_methods\n", ""))
    proc = spawn([*CLI, "start", "--methods-provider", "svc:factory"], cwd=tmp_path, env=_env())
    port = proc.wait_for_event("server_started")["port"]
    assert _do_action(port, "greet") == [b"None"]
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_config_file_errors(tmp_path: Path) -> None:
    """A missing config file or a directory given as one is a one-line error with exit 2."""
    _write(tmp_path, "svc", SERVICE)
    for bad in (tmp_path / "missing.toml", tmp_path):
        result = run_cli(["start", "--methods-provider", "svc", "--config", str(bad)], cwd=tmp_path)
        assert result.returncode == 2
        _assert_one_line_error(result, str(bad))


def test_invalid_settings_are_all_reported_with_env_names(tmp_path: Path) -> None:
    """Every invalid setting is reported at once, each naming its environment variable."""
    _write(tmp_path, "svc", SERVICE)
    env = {"GOODDATA_FLIGHT_SERVER__LISTEN_PORT": "99999", "GOODDATA_FLIGHT_SERVER__TASK_THREADS": "many"}
    result = run_cli(["start", "--methods-provider", "svc"], cwd=tmp_path, env=env)
    assert result.returncode == 2
    _assert_one_line_error(
        result, "GOODDATA_FLIGHT_SERVER__LISTEN_PORT", "GOODDATA_FLIGHT_SERVER__TASK_THREADS"
    )


def test_bad_logging_config_is_a_user_error(tmp_path: Path) -> None:
    """A missing logging config file is a one-line error with exit 2."""
    _write(tmp_path, "svc", SERVICE)
    result = run_cli(["start", "--methods-provider", "svc", "--logging-config", "nope.ini"], cwd=tmp_path)
    assert result.returncode == 2
    _assert_one_line_error(result, "nope.ini")


def test_port_taken_exits_3(tmp_path: Path) -> None:
    """Failing to bind is a failure to start: one line on stderr and exit 3."""
    _write(tmp_path, "svc", SERVICE)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            ["start", "--methods-provider", "svc", "--logging-config", str(_quiet_ini(tmp_path))],
            cwd=tmp_path,
            env=_env(port),
        )
    assert result.returncode == 3
    _assert_one_line_error(result, "failed to start", f"127.0.0.1:{port}")


def test_factory_failure_exits_3_and_debug_shows_traceback(tmp_path: Path) -> None:
    """A factory that raises fails the start (exit 3); --debug adds the traceback."""
    _write(
        tmp_path,
        "svc",
        "import gooddata_flight_server as gf\n"
        "@gf.flight_server_methods\ndef f(ctx):\n    raise OSError('no data dir')\n",
    )
    args = ["start", "--methods-provider", "svc", "--logging-config", str(_quiet_ini(tmp_path))]
    result = run_cli(args, cwd=tmp_path, env=_env())
    assert result.returncode == 3
    _assert_one_line_error(result, "failed to start: OSError: no data dir")
    debug = run_cli([*args, "--debug"], cwd=tmp_path, env=_env())
    assert debug.returncode == 3
    assert "Traceback" in debug.stderr and "no data dir" in debug.stderr


def test_console_script_is_installed() -> None:
    """The gooddata-flight-server console script exists next to the interpreter and prints its version."""
    import subprocess

    script = Path(sys.executable).parent / "gooddata-flight-server"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert gf.__version__ in result.stdout


def _quiet_ini(tmp_path: Path) -> Path:
    """A logging config that drops server logs, so stderr holds only what the CLI itself prints."""
    path = tmp_path / "quiet.ini"
    path.write_text(
        "[loggers]\nkeys=root\n\n[handlers]\nkeys=null\n\n[formatters]\nkeys=\n\n"
        "[logger_root]\nlevel=CRITICAL\nhandlers=null\n\n[handler_null]\nclass=NullHandler\nargs=()\n"
    )
    return path


SLOW_FACTORY = """
import os
import time
import structlog
import gooddata_flight_server as gf


@gf.flight_server_methods
def factory(ctx):
    structlog.get_logger("svc").info("factory_started")
    deadline = time.monotonic() + 30
    while not os.path.exists("release") and time.monotonic() < deadline:  # until the test says
        time.sleep(0.01)
    return gf.FlightServerMethods()
"""


def test_second_signal_during_startup_exits_at_once(
    tmp_path: Path, spawn: Callable[..., ServerProcess]
) -> None:
    """Two signals while the methods factory is still running end the process at once with exit 1."""
    _write(tmp_path, "svc", SLOW_FACTORY)
    proc = spawn([*CLI, "start", "--methods-provider", "svc"], cwd=tmp_path, env=_env())
    proc.wait_for_event("factory_started")
    proc.signal(signal.SIGTERM)
    proc.wait_for_event("signal_received")  # two signals sent at once would be delivered as one
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 1
    assert not any('"server_started"' in line for line in proc.stderr_lines)


def test_one_signal_during_startup_stops_without_serving(
    tmp_path: Path, spawn: Callable[..., ServerProcess]
) -> None:
    """A single signal during startup lets the factory finish, never opens the gate, and exits 0."""
    _write(tmp_path, "svc", SLOW_FACTORY)
    proc = spawn([*CLI, "start", "--methods-provider", "svc"], cwd=tmp_path, env=_env())
    proc.wait_for_event("factory_started")
    proc.signal(signal.SIGTERM)
    proc.wait_for_event("signal_received")
    (tmp_path / "release").touch()  # the factory ends only after the signal arrived
    assert proc.wait(timeout=30) == 0
    proc.wait_for_event("server_start_cancelled")
    assert not any('"server_started"' in line for line in proc.stderr_lines)


def test_start_failure_with_default_logging_prints_no_traceback(tmp_path: Path) -> None:
    """With the shipped logging config a failing factory still gives no traceback without --debug."""
    _write(
        tmp_path,
        "svc",
        "import gooddata_flight_server as gf\n"
        "@gf.flight_server_methods\ndef f(ctx):\n    raise OSError('no data dir')\n",
    )
    result = run_cli(["start", "--methods-provider", "svc"], cwd=tmp_path, env=_env())
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert "gooddata-flight-server: error: the server failed to start: OSError: no data dir" in result.stderr
