"""The isolated environment the FlexConnect tests run their server in, built once and kept.

A venv holding this package (a regular, non-editable install of the repository, as users get it),
``gooddata-flexconnect`` installed with ``--no-deps`` (it pins the original ``gooddata-flight-server``
that this package replaces) and every other dependency FlexConnect declares, read from its own
metadata. Never the original ``gooddata-flight-server``: :func:`ensure_environment` checks that the
package the venv imports is this repository's ``src``, file for file.

The venv lives in ``.venv-compat/`` at the repository root and is rebuilt only when what goes into it
changes (the Python version, this package's ``pyproject.toml``, the FlexConnect requirements below);
a change under ``src/`` only reinstalls this package. ``make test`` brings it up to date before the
tests run (``python -m tests.compat.environment``); the tests' session fixture calls the same function.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "gooddata_flight_server"
CACHE = REPO / ".venv-compat"
VENV = CACHE / "venv"

FLEXCONNECT = "gooddata-flexconnect==1.78.*"
"""The FlexConnect release the tests prove; it declares ``gooddata-flight-server~=1.78.0``."""

_DEPS_KEY = VENV / ".deps-key"
_PACKAGE_KEY = VENV / ".package-key"
_PROBE = """
import importlib.metadata as m, json, sys
import gooddata_flight_server, gooddata_flight_server.cli, gooddata_flexconnect, pyarrow.flight
dist = m.distribution("gooddata-flight-server")
print(json.dumps({
    "package": gooddata_flight_server.__file__,
    "flexconnect": gooddata_flexconnect.__file__,
    "flexconnect_version": m.version("gooddata-flexconnect"),
    "direct_url": dist.read_text("direct_url.json"),
    "prefix": sys.prefix,
}))
"""


@dataclass(frozen=True)
class CompatEnvironment:
    venv: Path
    flexconnect_version: str

    @property
    def cli(self) -> Path:
        """The ``gooddata-flight-server`` console script of this package, installed in the venv."""
        return self.venv / "bin" / "gooddata-flight-server"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def _deps_key() -> str:
    """What the venv's third-party content depends on; a change means a new venv."""
    return _digest(
        sys.version.encode(),
        sys.base_prefix.encode(),
        FLEXCONNECT.encode(),
        (REPO / "pyproject.toml").read_bytes(),
        Path(__file__).read_bytes(),  # how the venv is built
    )


def _package_files() -> list[Path]:
    return sorted(p for p in SRC.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _package_key() -> str:
    """What the installed copy of this package depends on; a change means a reinstall of it only."""
    parts = [(REPO / "pyproject.toml").read_bytes()]
    for path in _package_files():
        parts += [str(path.relative_to(SRC)).encode(), path.read_bytes()]
    return _digest(*parts)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _pip(*args: str) -> None:
    """pip of the interpreter running this, acting on the compat venv (which holds no pip of its own)."""
    command = [sys.executable, "-m", "pip", "--python", str(VENV / "bin" / "python"), *args]
    result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr}")


def _flexconnect_requirements() -> list[str]:
    """FlexConnect's declared dependencies, read from its installed metadata, less the original server."""
    script = (
        "import importlib.metadata as m, json; print(json.dumps(m.requires('gooddata-flexconnect') or []))"
    )
    out = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", script], capture_output=True, text=True, check=True
    ).stdout
    requirements: list[str] = json.loads(out)
    kept = []
    for requirement in requirements:
        name = re.match(r"[A-Za-z0-9._-]+", requirement)
        assert name is not None, requirement
        if "extra ==" in requirement or re.sub(r"[-_.]+", "-", name[0].lower()) == "gooddata-flight-server":
            continue
        kept.append(requirement)
    return kept


def _build_venv() -> None:
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(VENV)], check=True)
    _pip("install", "--quiet", "--no-compile", "--no-deps", FLEXCONNECT)
    # this package and FlexConnect's other dependencies in one resolution, so they have to agree
    _pip("install", "--quiet", "--no-compile", str(REPO), *_flexconnect_requirements())


def _reinstall_package() -> None:
    _pip("install", "--quiet", "--no-deps", "--force-reinstall", str(REPO))


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One builder at a time, should two test runs start together."""
    CACHE.mkdir(exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _verify() -> CompatEnvironment:
    """The venv imports this repository's package (not the original) next to FlexConnect."""
    # The probe imports what a FlexConnect server imports and, allowed to write bytecode, leaves it
    # behind for the servers to come (pip was told not to compile the thousands of files they never
    # import, and PYTHONDONTWRITEBYTECODE would keep each server start compiling them anew).
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")
    }
    result = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", _PROBE], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        raise AssertionError(f"the compat venv cannot import its packages:\n{result.stderr}")
    probe = json.loads(result.stdout)
    package = Path(probe["package"]).parent
    site = Path(probe["flexconnect"]).parents[1]
    if Path(probe["prefix"]).resolve() != VENV.resolve() or package.parent != site:
        raise AssertionError(f"the compat venv does not import its own packages: {probe}")
    direct_url = json.loads(probe["direct_url"] or "{}")
    if direct_url.get("url") != REPO.as_uri() or direct_url.get("dir_info", {}).get("editable"):
        raise AssertionError(f"gooddata_flight_server in the compat venv is not this repository's: {probe}")
    for path in _package_files():
        installed = package / path.relative_to(SRC)
        if not installed.is_file() or installed.read_bytes() != path.read_bytes():
            raise AssertionError(f"{installed} differs from {path}: the installed package is stale")
    return CompatEnvironment(VENV, probe["flexconnect_version"])


def ensure_environment(report: bool = False) -> CompatEnvironment:
    """Bring the compat venv up to date (build, reinstall this package, or nothing) and verify it."""
    with _locked():
        started = time.monotonic()
        deps_key, package_key = _deps_key(), _package_key()
        if _read(_DEPS_KEY) != deps_key:
            what = "built"
            _build_venv()
            _DEPS_KEY.write_text(deps_key)
            _PACKAGE_KEY.write_text(package_key)
        elif _read(_PACKAGE_KEY) != package_key:
            what = "package reinstalled"
            _reinstall_package()
            _PACKAGE_KEY.write_text(package_key)
        else:
            what = "up to date"
        environment = _verify()
        if report:
            elapsed = time.monotonic() - started
            print(  # noqa: T201  # the make step says what it did
                f"compat environment {what} in {elapsed:.1f} s: {VENV.relative_to(REPO)} "
                f"(this package + gooddata-flexconnect {environment.flexconnect_version})"
            )
        return environment


if __name__ == "__main__":
    ensure_environment(report=True)
