"""``promtool`` and the ``prometheus`` server binary for the operations-kit tests.

Both come from Debian's ``prometheus`` package (2.42 on bookworm). They are looked up on ``PATH`` (a
system install, Homebrew ...) and then in ``.tools/prometheus/bin/`` at the repository root, which
``make test`` fills when neither has them (``python -m tests.ops.prometheus_tools``):

1. ``apt-get download prometheus`` fetches the package file from the configured Debian mirror
   (after ``apt-get update`` when apt knows no such package yet, which needs root);
2. ``dpkg-deb -x`` unpacks it into a scratch directory, and the two binaries move into ``.tools``.

Nothing is installed into the system: no service is registered or started (the tests start their
own Prometheus), no ``prometheus`` user is created, and without the package's web-UI dependencies
the download is one file of ~19 MB. Where apt cannot do it (another OS, or no package lists and not
root), the command says so and how to get the binaries, and the tests that need them are skipped
with the same message, unless ``GDFS_REQUIRE_PROMETHEUS=1`` (``.ci/run`` sets it): then both fail,
so that CI cannot pass without having run them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools" / "prometheus"
BIN = TOOLS / "bin"
BINARIES = ("promtool", "prometheus")
REQUIRE_ENV = "GDFS_REQUIRE_PROMETHEUS"
PACKAGE = "prometheus"

HOW_TO_GET = (
    "promtool and prometheus (2.x) are needed for the operations-kit tests: on Debian/Ubuntu run "
    "`make prometheus-tools` (as root when apt has no package lists yet), elsewhere install Prometheus "
    "(e.g. `brew install prometheus`) so that both are on PATH"
)


class ToolsUnavailable(RuntimeError):
    """The binaries are not here and cannot be fetched on this machine."""


def find(name: str) -> Path | None:
    """A binary on PATH, else the copy in .tools/prometheus/bin, else None."""
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    local = BIN / name
    return local if os.access(local, os.X_OK) else None


def required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def _run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600
    )


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One installer at a time, should two test runs start together."""
    TOOLS.mkdir(parents=True, exist_ok=True)
    with (TOOLS / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _download(scratch: Path) -> Path:
    """The package's .deb in ``scratch``, fetched by apt (its lists refreshed first if need be)."""
    result = _run("apt-get", "download", PACKAGE, cwd=scratch)
    if result.returncode != 0:
        if os.geteuid() != 0:
            raise ToolsUnavailable(
                f"`apt-get download {PACKAGE}` failed and refreshing apt's package lists needs root:\n"
                f"{result.stderr.strip()}"
            )
        update = _run("apt-get", "update", "-qq")
        if update.returncode != 0:
            raise ToolsUnavailable(f"`apt-get update` failed:\n{update.stderr.strip()}")
        result = _run("apt-get", "download", PACKAGE, cwd=scratch)
        if result.returncode != 0:
            raise ToolsUnavailable(f"`apt-get download {PACKAGE}` failed:\n{result.stderr.strip()}")
    (deb,) = scratch.glob(f"{PACKAGE}_*.deb")
    return deb


def install() -> str:
    """Put both binaries into .tools/prometheus/bin unless they are available already; say what happened."""
    with _locked():
        found = {name: find(name) for name in BINARIES}
        if all(found.values()):
            return "found " + ", ".join(str(path) for path in found.values())
        if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
            raise ToolsUnavailable("no apt-get/dpkg-deb on this machine")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="gdfs-prometheus-") as tmp:
            scratch = Path(tmp)
            deb = _download(scratch)
            unpacked = scratch / "root"
            result = _run("dpkg-deb", "-x", str(deb), str(unpacked))
            if result.returncode != 0:
                raise ToolsUnavailable(f"`dpkg-deb -x {deb.name}` failed:\n{result.stderr.strip()}")
            BIN.mkdir(parents=True, exist_ok=True)
            for name in BINARIES:
                # a move within the scratch directory's filesystem or a copy; the final rename is atomic
                staged = BIN / f".{name}.new"
                shutil.move(str(unpacked / "usr" / "bin" / name), staged)
                staged.replace(BIN / name)
        version = _run(str(BIN / "promtool"), "--version")
        if version.returncode != 0:
            raise ToolsUnavailable(f"the unpacked promtool does not run:\n{version.stderr.strip()}")
        first_line = (version.stdout or version.stderr).splitlines()[0]
        return f"unpacked {deb.name} into {BIN} in {time.monotonic() - started:.1f} s ({first_line})"


def main() -> int:
    try:
        print(f"prometheus-tools: {install()}")  # noqa: T201
    except ToolsUnavailable as e:
        print(f"prometheus-tools: unavailable: {e}\n{HOW_TO_GET}", file=sys.stderr)  # noqa: T201
        if required():
            print(f"prometheus-tools: {REQUIRE_ENV} is set, failing", file=sys.stderr)  # noqa: T201
            return 1
        print("prometheus-tools: the tests that need them will be skipped", file=sys.stderr)  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
