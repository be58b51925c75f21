"""What pyarrow charges per call for Python server middleware, measured on raw servers.

``python -m benchmarks.middleware_cost [--threads 1,8] [--reps 5] [--seconds 2]``

Every variant is a raw ``FlightServerBase`` answering a no-op DoAction; they differ only in their
middleware:

- ``none``: no middleware at all;
- ``start_only``: one factory whose ``start_call`` returns None (pyarrow keeps no per-call object,
  so it never calls back at the end of the call) -- the raw server's auth middleware;
- ``instance``: one factory returning a per-call ``ServerMiddleware`` (pyarrow then calls its
  ``sending_headers`` and ``call_completed`` and destroys it: more entries into Python per call);
- ``py_completed``: the same, with ``call_completed`` a Python method (doing nothing);
- ``py_completed_pinned``: the same, but ``start_call`` keeps its thread state for the rest of the
  call (``PyGILState_Ensure``) and ``call_completed`` releases it: the fix proposed in the README;
- ``instance_x3``: three per-call objects (what the framework registers);
- ``pinned_forever``: ``start_only`` whose first callback on a thread keeps that thread's state for
  good; fastest, but leaks one thread state per gRPC thread that exits (see the RSS column).

Each entry from a gRPC thread into Python goes through ``PyGILState_Ensure``; gRPC's threads have no
Python thread state of their own, so each entry creates one (and ``mmap``s a frame stack for it when
Python code runs) and each exit destroys it.
"""

from __future__ import annotations

import argparse
import ctypes
import signal
import statistics
import subprocess
import sys
import threading
from typing import Any

import pyarrow.flight

from benchmarks.common import free_port, wait_until_serving
from benchmarks.run import cpu_seconds
from benchmarks.workloads import CALLS, small_calls

VARIANTS = (
    "none",
    "start_only",
    "instance",
    "py_completed",
    "py_completed_pinned",
    "instance_x3",
    "pinned_forever",
)

_local = threading.local()


def _pin_thread_state() -> None:
    if not getattr(_local, "pinned", False):
        ctypes.pythonapi.PyGILState_Ensure()  # never released: this thread keeps its thread state
        _local.pinned = True


class _PerCall(pyarrow.flight.ServerMiddleware):  # type: ignore[misc]
    pass


class _PyCompleted(pyarrow.flight.ServerMiddleware):  # type: ignore[misc]
    def __init__(self, pinned: bool) -> None:
        super().__init__()
        self._pinned = pinned

    def call_completed(self, exception: BaseException | None) -> None:
        if self._pinned:
            ctypes.pythonapi.PyGILState_Release(0)  # the call's pin (PyGILState_LOCKED)


class _Factory(pyarrow.flight.ServerMiddlewareFactory):  # type: ignore[misc]
    def __init__(self, kind: str) -> None:
        super().__init__()
        self._kind = kind

    def start_call(self, info: Any, headers: Any) -> Any:
        kind = self._kind
        if kind == "start_only":
            return None
        if kind == "pinned_forever":
            _pin_thread_state()
            return None
        if kind == "py_completed":
            return _PyCompleted(False)
        if kind == "py_completed_pinned":
            ctypes.pythonapi.PyGILState_Ensure()  # kept until call_completed, on this same thread
            return _PyCompleted(True)
        return _PerCall()


def _middleware(variant: str) -> dict[str, _Factory]:
    if variant == "none":
        return {}
    if variant == "instance_x3":
        return {f"m{i}": _Factory("instance") for i in range(3)}
    return {"m": _Factory(variant)}


class _Server(pyarrow.flight.FlightServerBase):  # type: ignore[misc]
    def do_action(self, context: Any, action: Any) -> list[bytes]:
        return [b"pong"]


def serve(variant: str, port: int) -> None:
    server = _Server(f"grpc://127.0.0.1:{port}", middleware=_middleware(variant))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.shutdown()


def _rss_mib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS:"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", nargs=2, metavar=("VARIANT", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--threads", default="1,8")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        for variant in args.variants.split(","):
            port = free_port()
            command = [sys.executable, "-m", "benchmarks.middleware_cost", "--serve", variant, str(port)]
            servers[variant] = (subprocess.Popen(command), f"grpc://127.0.0.1:{port}")
        for _, uri in servers.values():
            wait_until_serving(uri, auth=False)
        start_rss = {variant: _rss_mib(proc.pid) for variant, (proc, _) in servers.items()}
        print(f"{'variant':<20} {'threads':>7} {'calls/s':>8} {'server CPU us/call':>19} {'RSS MiB':>12}")
        for threads in (int(t) for t in args.threads.split(",")):
            run = small_calls(CALLS["action"], threads, args.seconds)
            samples: dict[str, list[tuple[float, float]]] = {v: [] for v in servers}
            for rep in range(args.reps):
                order = list(servers.items())
                if rep % 2:
                    order.reverse()
                for variant, (proc, uri) in order:
                    before = cpu_seconds(proc.pid)
                    result = run(uri, False)
                    cpu = cpu_seconds(proc.pid) - before
                    samples[variant].append((result.value, cpu / result.work * 1e6))
            for variant, values in samples.items():
                rate = statistics.median(v[0] for v in values)
                cpu = statistics.median(v[1] for v in values)
                rss = f"{start_rss[variant]}->{_rss_mib(servers[variant][0].pid)}"
                print(f"{variant:<20} {threads:>7} {rate:>8.0f} {cpu:>19.1f} {rss:>12}", flush=True)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
