"""The third server: ``benchmarks/framework_service.py`` on the ORIGINAL ``gooddata-flight-server`` package.

The harness installs the original package from PyPI, pinned to :data:`ORIGINAL_VERSION`, into a
virtual environment of its own (``benchmarks/.venv-original``, ignored by git) the first time it
is needed, with the harness's own pyarrow version so that both packages run on the same Arrow and
gRPC. Later runs reuse that environment while its stamp names the same requirements.

The original is started through its own CLI (``gooddata-flight-server start --methods-provider
benchmarks.framework_service --config <toml>``) with ``PYTHONPATH`` set to the repository root, so
that ``benchmarks.*`` imports while ``gooddata_flight_server`` comes from the environment's
site-packages (this repository keeps its package under ``src/``, which is not on that path).
:func:`install` checks where the package is imported from and :func:`check_started` that the
server's log carries the original's ``server_startup`` event with its version.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow

from benchmarks.common import TOKENS, free_port

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / "benchmarks" / ".venv-original"
ORIGINAL_VERSION = "1.78.0"  # the newest release at the time of writing; exact, so runs compare alike
_STAMP = ".bench-requirements"
_PROBE = (
    "import importlib.metadata, gooddata_flight_server, pyarrow; "
    "print(gooddata_flight_server.__file__); "
    "print(importlib.metadata.version('gooddata-flight-server')); "
    "print(pyarrow.__version__)"
)


class PeerUnavailable(Exception):
    """The original package cannot be installed or run here; the message is one line for the user."""


def requirements() -> list[str]:
    return [f"gooddata-flight-server=={ORIGINAL_VERSION}", f"pyarrow=={pyarrow.__version__}"]


def server_env() -> dict[str, str]:
    """The environment of the original's processes: nothing of ours or of the harness's venv leaks in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GOODDATA_FLIGHT_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env["PYTHONPATH"] = str(REPO)
    return env


def _run(args: list[str], what: str, timeout: float) -> str:
    try:
        done = subprocess.run(
            args, cwd=REPO, env=server_env(), capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PeerUnavailable(f"{what}: {e}") from e
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line and not line.startswith("WARNING:")]
        raise PeerUnavailable(f"{what} failed: {lines[-1] if lines else f'exit code {done.returncode}'}")
    return done.stdout


def install(venv: Path = VENV) -> str:
    """Create or reuse the original's environment; return a line saying what will run.

    Raises :class:`PeerUnavailable` when pip cannot install it (e.g. no network) or the package
    imported from the environment is not the pinned original.
    """
    stamp = venv / _STAMP
    wanted = "\n".join(requirements())
    if not (stamp.is_file() and stamp.read_text() == wanted):
        shutil.rmtree(venv, ignore_errors=True)
        print(f"installing {' '.join(requirements())} into {venv} ...", flush=True)
        _run([sys.executable, "-m", "venv", str(venv)], "creating its virtual environment", 120)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        _run([*pip, *requirements()], f"pip install {' '.join(requirements())}", 900)
        stamp.write_text(wanted)
    location, version, arrow = _run([str(venv / "bin" / "python"), "-c", _PROBE], "importing it", 60).split()
    package = Path(location).resolve().parent
    if not package.is_relative_to(venv.resolve()):
        raise PeerUnavailable(f"gooddata_flight_server imports from {package}, not from {venv}")
    if version != ORIGINAL_VERSION:
        raise PeerUnavailable(f"{venv} holds gooddata-flight-server {version}, not {ORIGINAL_VERSION}")
    return f"gooddata-flight-server {version} from {package} (pyarrow {arrow})"


def command(config: Path, venv: Path = VENV) -> list[str]:
    """The original's CLI, as its README starts it."""
    return [
        str(venv / "bin" / "gooddata-flight-server"),
        "start",
        "--methods-provider",
        "benchmarks.framework_service",
        "--config",
        str(config),
    ]


def config(port: int, auth: bool, table_mib: int) -> str:
    """A config the original reads, with the framework's setup for the mode (see benchmarks/README.md).

    The original validates ``[server]`` with Dynaconf validators of its own; every key written here
    means the same in both packages, and every default left alone (32 task threads, 2 close
    threads, results kept 60 s, malloc_trim every 30 s, no health check server, no tracing) is
    the same value in both.
    """
    lines = ["[server]", f"listen_port = {port}", 'advertise_host = "127.0.0.1"']
    if auth:
        # "token" with the default token_verification, EnumeratedTokenVerification, which reads
        # [enumerated_tokens] tokens; the token travels as "authorization: Bearer <token>" in both
        lines += [
            'authentication_method = "token"',
            'metrics_host = "127.0.0.1"',
            f"metrics_port = {free_port()}",
        ]
    else:
        lines += ['authentication_method = "none"']
    lines += ["", "[enumerated_tokens]", "tokens = [" + ", ".join(f'"{t}"' for t in TOKENS) + "]"]
    lines += ["", "[bench]", f"table_mib = {table_mib}", ""]
    return "\n".join(lines)


def check_started(log: Path) -> None:
    """Raise :class:`PeerUnavailable` unless the log shows the original's own startup event."""
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "server_startup":
            if event.get("server_version") == ORIGINAL_VERSION:
                return
            raise PeerUnavailable(f"the server reports version {event.get('server_version')}")
    raise PeerUnavailable(f"no server_startup event of gooddata-flight-server {ORIGINAL_VERSION} in {log}")
