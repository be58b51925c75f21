"""How many times a server enters Python per call, counted with gdb on the running server process.

``python -m benchmarks.python_entries [--calls 200] [--modes off,on] [--no-peer]``

pyarrow enters Python from gRPC's threads through ``PyGILState_Ensure`` (every middleware
callback, the handler, each batch of a stream, the destruction of per-call objects); where the
thread has no Python thread state of its own, that entry creates one (``PyThreadState_New``) and
the matching release destroys it. The cost of a small call is mostly these entries (README.md,
"What limits them"), so this counts both per call, for each kind of small call, on:

- ``raw``: plain ``pyarrow.flight`` (``--auth`` adds its one bearer-checking middleware);
- ``framework``: this package, with ``hold_thread_state`` on (the default) and off;
- ``original``: the original package, when it can be installed (``benchmarks/original.py``).

Method: warm the server up, attach gdb with two counting breakpoints, make ``--calls`` calls one
after the other from one client, detach, and divide the hit counts by the number of calls. Calls
are sequential so that nothing but the calls runs in the server (idle gRPC threads do not enter
Python). The counts do not depend on the machine's load; the breakpoints slow the calls down, so
no timing is taken here.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.flight

from benchmarks import original
from benchmarks.common import call_options, wait_until_serving
from benchmarks.run import Server, start_framework, start_original, start_raw
from benchmarks.workloads import CALLS

KINDS = ("action", "info", "task")
_FUNCTIONS = ("PyGILState_Ensure", "PyThreadState_New")
_HITS = re.compile(r"breakpoint already hit (\d+) time")
_GDB_SCRIPT = """\
set pagination off
set confirm off
{breaks}
continue
info breakpoints
detach
quit
"""


def _gdb_script() -> str:
    breaks = "\n".join(f"break {name}\ncommands\nsilent\ncontinue\nend" for name in _FUNCTIONS)
    return _GDB_SCRIPT.format(breaks=breaks)


def count_entries(server: Server, kind: str, calls: int, auth: bool, tmp: Path) -> dict[str, float]:
    """Calls of ``kind`` made while gdb counts the server's entries into Python; per call."""
    call = CALLS[kind]
    options = call_options(auth, 60.0)
    script = tmp / "count.gdb"
    script.write_text(_gdb_script())
    with pyarrow.flight.FlightClient(server.uri) as client:
        for _ in range(20):  # warm: connection up, lazy imports done, first-call allocations made
            call(client, options)
        gdb = subprocess.Popen(
            ["gdb", "-q", "-batch", "-nx", "-x", str(script), "-p", str(server.proc.pid)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # our SIGINT goes to gdb alone, which stops the inferior
        )
        _wait_attached(server)
        for _ in range(calls):
            call(client, options)
        gdb.send_signal(signal.SIGINT)
        output, _ = gdb.communicate(timeout=120)
    hits = [int(m) for m in _HITS.findall(output)]
    if len(hits) != len(_FUNCTIONS):
        # a breakpoint never hit prints no count line: only possible for thread-state creation
        if len(hits) == 1 and "PyGILState_Ensure" in output:
            hits.append(0)
        else:
            raise RuntimeError(f"cannot read gdb's breakpoint counts:\n{output[-3000:]}")
    return {name: count / calls for name, count in zip(_FUNCTIONS, hits, strict=True)}


def _wait_attached(server: Server, timeout: float = 60.0) -> None:
    """gdb has attached once the server is traced (``TracerPid`` in its status)."""
    deadline = time.monotonic() + timeout
    status = Path(f"/proc/{server.proc.pid}/status")
    while time.monotonic() < deadline:
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        if fields.get("TracerPid", "0").strip() != "0":
            time.sleep(0.5)  # the breakpoints are inserted right after the attach
            return
        time.sleep(0.05)
    raise TimeoutError("gdb did not attach to the server")


def _start(name: str, tmp: Path, auth: bool) -> Server:
    if name == "raw":
        return start_raw(tmp, auth, 0)
    if name == "original":
        return start_original(tmp, auth, 0)
    no_hold = {"GOODDATA_FLIGHT_SERVER__HOLD_THREAD_STATE": "false"} if "no hold" in name else {}
    return start_framework(tmp, auth, 0, tag="-nohold" if no_hold else "", env_extra=no_hold)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=200, help="calls counted per server and kind")
    parser.add_argument("--modes", default="off,on", help="auth+metrics off, on, or both")
    parser.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    if subprocess.run(["gdb", "--version"], capture_output=True).returncode != 0:
        print("gdb is needed (apt-get install gdb)", file=sys.stderr)
        return 2
    peer = args.peer
    if peer:
        try:
            original.install()
        except original.PeerUnavailable as e:
            print(f"PEER skipped: {e}")
            peer = False
    print(f"{'server':<24} {'mode':<4} {'kind':<7} {'entries/call':>12} {'new states/call':>16}")
    with tempfile.TemporaryDirectory(prefix="gdfs-entries-") as tmp_name:
        tmp = Path(tmp_name)
        for mode in args.modes.split(","):
            auth = mode == "on"
            names = ["raw", "framework", "framework (no hold)", *(["original"] if peer else [])]
            for name in names:
                server = _start(name, tmp, auth)
                try:
                    wait_until_serving(server.uri, auth)
                    for kind in KINDS:
                        per_call = count_entries(server, kind, args.calls, auth, tmp)
                        print(
                            f"{name:<24} {mode:<4} {kind:<7} {per_call['PyGILState_Ensure']:>12.2f} "
                            f"{per_call['PyThreadState_New']:>16.2f}",
                            flush=True,
                        )
                finally:
                    server.stop()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
