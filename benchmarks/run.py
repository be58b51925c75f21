"""The benchmark harness: raw ``pyarrow.flight``, this framework and the original package, same run.

``python -m benchmarks.run`` (what ``make bench`` runs), from the repository root. For each mode
(auth+metrics off, then on) it starts a raw server, a framework server and the same service on the
original ``gooddata-flight-server`` package (installed on first use into a virtual environment of
its own, see ``benchmarks/original.py``), each in its own process, and measures every workload
from this process against the three in turn, rotating which goes first, ``--reps`` times. It
reports medians, a table, one ``RATIO <name> <framework/raw>`` and one ``PEER <name>
<framework/original>`` line per workload. Finally it checks on the framework server that the task
round trip does not slow down with 10,000 stored task results (``SCALE`` line).

When the original cannot be installed or started, it prints ``PEER skipped: <reason>`` and measures
the other two.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow
import pyarrow.flight

from benchmarks import original
from benchmarks.common import TOKENS, big_table, call_options, free_port, wait_until_serving
from benchmarks.workloads import CALLS, Measurement, do_get_big, do_put_big, small_calls

REPO = Path(__file__).resolve().parent.parent
SERVERS = ("raw", "framework", "original")

Run = Callable[[str, bool], Measurement]


@dataclasses.dataclass
class Server:
    name: str
    uri: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def wait_until_serving(self, auth: bool, timeout: float = 120.0) -> None:
        """Poll until it answers; give up early if the process has ended (its log is then printed)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                wait_until_serving(self.uri, auth, timeout=min(2.0, max(0.1, deadline - time.monotonic())))
                return
            except TimeoutError:
                if self.proc.poll() is not None or time.monotonic() >= deadline:
                    print(self.log.read_text(errors="replace")[-4000:], file=sys.stderr)
                    state = (
                        "did not serve" if self.proc.poll() is None else f"exited ({self.proc.returncode})"
                    )
                    raise TimeoutError(f"the {self.name} server {state}; its log is above") from None


def _spawn(
    name: str, args: list[str], tmp: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
        )
    return proc, log


def start_raw(tmp: Path, auth: bool, table_mib: int) -> Server:
    port = free_port()
    args = [sys.executable, "-m", "benchmarks.raw_server", "--port", str(port), "--table-mib", str(table_mib)]
    proc, log = _spawn(f"raw-{'on' if auth else 'off'}", [*args, *(["--auth"] if auth else [])], tmp)
    return Server("raw", f"grpc://127.0.0.1:{port}", proc, log)


def framework_config(port: int, auth: bool, table_mib: int, extra: dict[str, object] | None = None) -> str:
    lines = [
        "[server]",
        f"listen_port = {port}",
        'advertise_host = "127.0.0.1"',
    ]
    if auth:
        lines += [
            'authentication_method = "token"',
            'metrics_host = "127.0.0.1"',
            f"metrics_port = {free_port()}",
        ]
    for key, value in (extra or {}).items():
        lines.append(f"{key} = {value!r}".replace("'", '"'))
    lines += ["", "[enumerated_tokens]", f"tokens = {list(TOKENS)!r}".replace("'", '"')]
    lines += ["", "[bench]", f"table_mib = {table_mib}", ""]
    return "\n".join(lines)


def start_framework(
    tmp: Path, auth: bool, table_mib: int, tag: str = "", env_extra: dict[str, str] | None = None
) -> Server:
    """The framework service through its CLI; ``env_extra`` sets environment variables (settings
    such as ``GOODDATA_FLIGHT_SERVER__HOLD_THREAD_STATE=false``), none are inherited."""
    port = free_port()
    name = f"framework-{'on' if auth else 'off'}{tag}"
    config = tmp / f"{name}.toml"
    config.write_text(framework_config(port, auth, table_mib))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOODDATA_FLIGHT_")}
    env.update(env_extra or {})
    args = [
        sys.executable,
        "-m",
        "gooddata_flight_server",
        "start",
        "--methods-provider",
        "benchmarks.framework_service",
        "--config",
        str(config),
    ]
    proc, log = _spawn(name, args, tmp, env)
    return Server("framework", f"grpc://127.0.0.1:{port}", proc, log)


def start_original(tmp: Path, auth: bool, table_mib: int) -> Server:
    """``benchmarks/framework_service.py`` on the original package (``original.install()`` first)."""
    port = free_port()
    name = f"original-{'on' if auth else 'off'}"
    config = tmp / f"{name}.toml"
    config.write_text(original.config(port, auth, table_mib))
    proc, log = _spawn(name, original.command(config), tmp, original.server_env())
    return Server("original", f"grpc://127.0.0.1:{port}", proc, log)


@contextlib.contextmanager
def servers(
    tmp: Path, auth: bool, table_mib: int, peer: bool, skipped: list[str], *, framework_env: dict[str, str]
) -> Iterator[list[Server]]:
    """Raw, framework and (if ``peer``) original servers, serving.

    An original that does not start is left out, and why is added to ``skipped``.
    """
    started = [
        start_raw(tmp, auth, table_mib),
        start_framework(tmp, auth, table_mib, env_extra=framework_env),
    ]
    if peer:
        started.append(start_original(tmp, auth, table_mib))
    try:
        serving = []
        for server in started:
            try:
                server.wait_until_serving(auth)
                if server.name == "original":
                    original.check_started(server.log)
            except (TimeoutError, original.PeerUnavailable) as e:
                if server.name != "original":
                    raise
                print(f"PEER skipped: {e}", flush=True)
                skipped.append(f"{'on' if auth else 'off'} mode: {e}")
                server.stop()
                continue
            serving.append(server)
        yield serving
    finally:
        for server in started:
            server.stop()


@dataclasses.dataclass
class Row:
    workload: str
    mode: str
    unit: str
    samples: dict[str, list[Measurement]] = dataclasses.field(
        default_factory=lambda: {name: [] for name in SERVERS}
    )
    peer_error: str | None = None  # why the original has no samples for this workload, if it failed

    @property
    def name(self) -> str:
        return f"{self.workload}.{self.mode}"

    def median(self, server: str) -> float | None:
        ms = self.samples[server]
        return statistics.median(m.value for m in ms) if ms else None

    def latency(self, server: str, p: float) -> float | None:
        values = [v for m in self.samples[server] if (v := m.percentile(p)) is not None]
        return statistics.median(values) if values else None

    def cpu_per_work(self, server: str) -> float | None:
        """Server CPU per unit of work: seconds per GB, or seconds per call."""
        values = [m.server_cpu / m.work for m in self.samples[server] if m.work]
        return statistics.median(values) if values else None

    def _of_medians(self, server: str) -> float | None:
        fw, other = self.median("framework"), self.median(server)
        return fw / other if fw is not None and other else None

    @property
    def ratio(self) -> float | None:
        """framework / raw of the medians: the RATIO line."""
        return self._of_medians("raw")

    @property
    def peer(self) -> float | None:
        """framework / original of the medians: the PEER line (None without the original's samples)."""
        return self._of_medians("original")

    @property
    def paired_ratio(self) -> float | None:
        """Median of the per-repetition framework/raw ratios (measured in the same round): less drift."""
        pairs = list(zip(self.samples["raw"], self.samples["framework"], strict=True))
        return statistics.median(f.value / r.value for r, f in pairs) if pairs else None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_one(run: Run, server: Server, auth: bool) -> Measurement:
    before = cpu_seconds(server.proc.pid)
    result = run(server.uri, auth)
    return dataclasses.replace(result, server_cpu=cpu_seconds(server.proc.pid) - before)


def measure(row: Row, run: Run, servers: list[Server], *, auth: bool, reps: int) -> None:
    """``reps`` rounds, each measuring every server once; which goes first rotates every round."""
    active = list(servers)

    def attempt(server: Server, record: bool) -> None:
        try:
            if record:
                row.samples[server.name].append(measure_one(run, server, auth))
            else:
                run(server.uri, auth)
        except Exception as e:  # the original may lack something a workload needs: report, go on
            if server.name != "original":
                raise
            first_line = str(e).splitlines()[0] if str(e) else ""
            row.peer_error = f"{type(e).__name__}: {first_line}"
            row.samples["original"].clear()
            active.remove(server)

    if row.unit == "GB/s":
        # one unmeasured transfer each first: the client's first gigabyte faults in fresh pages,
        # which would penalise whichever server happens to go first
        for server in list(active):
            attempt(server, record=False)
    for rep in range(reps):
        shift = rep % len(active)
        for server in active[shift:] + active[:shift]:
            attempt(server, record=True)
    _print_row(row)


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else f"{value * scale:{spec}}"


_WHO = {"raw": "raw", "framework": "fw", "original": "orig"}
HEADER = (
    f"{'workload':<12} {'mode':<4} {'unit':<8} {'raw':>8} {'framework':>9} {'original':>8}"
    f" {'ratio':>6} {'paired':>6} {'peer':>6}"
    + "".join(f"  {_WHO[s] + ' p50/p99 ms':>16}" for s in SERVERS)
    + f"  {'server CPU raw|fw|orig':>26}  samples raw | framework | original"
)


def _print_row(row: Row) -> None:
    digits = ".3f" if row.unit == "GB/s" else ".0f"
    latencies = "".join(
        f"  {_fmt(row.latency(s, 50), '.2f', 1000) + '/' + _fmt(row.latency(s, 99), '.2f', 1000):>16}"
        for s in SERVERS
    )
    scale, cpu_unit = (1.0, "s/GB") if row.unit == "GB/s" else (1e6, "us/call")
    cpu = "|".join(_fmt(row.cpu_per_work(s), ".2f", scale) for s in SERVERS) + f" {cpu_unit}"
    samples = " | ".join(" ".join(f"{m.value:{digits}}" for m in row.samples[s]) or "-" for s in SERVERS)
    print(
        f"{row.workload:<12} {row.mode:<4} {row.unit:<8} {_fmt(row.median('raw'), digits):>8} "
        f"{_fmt(row.median('framework'), digits):>9} {_fmt(row.median('original'), digits):>8} "
        f"{_fmt(row.ratio, '.3f'):>6} {_fmt(row.paired_ratio, '.3f'):>6} {_fmt(row.peer, '.3f'):>6}"
        f"{latencies}  {cpu:>26}  {samples}",
        flush=True,
    )
    if row.peer_error:
        print(f"  (the original failed on {row.name}: {row.peer_error})", flush=True)


def _action(uri: str, auth: bool, kind: str, body: bytes = b"") -> int:
    with pyarrow.flight.FlightClient(uri) as client:
        results = list(client.do_action(pyarrow.flight.Action(kind, body), call_options(auth, 600.0)))
    return int(results[0].body.to_pybytes())


def scaling_check(tmp: Path, stored: int, threads: int, seconds: float, reps: int) -> tuple[float, float]:
    """Task round trips per second on one framework server with 0 and with ``stored`` results kept."""
    fw = start_framework(tmp, auth=True, table_mib=0, tag="-scaling")
    run = small_calls(CALLS["task"], threads, seconds)
    empty: list[float] = []
    full: list[float] = []
    try:
        wait_until_serving(fw.uri, auth=True)
        for rep in range(reps):
            order = [(0, empty), (stored, full)]
            if rep % 2:
                order.reverse()
            for count, samples in order:
                _action(fw.uri, True, "clear")
                if count:
                    held = _action(fw.uri, True, "fill", str(count).encode())
                    assert held >= count, held
                samples.append(run(fw.uri, True).value)
        print(
            f"task round trip, {threads} threads: {statistics.median(empty):.0f} calls/s with 0 stored "
            f"results, {statistics.median(full):.0f} calls/s with {stored} stored "
            f"(samples {' '.join(f'{v:.0f}' for v in empty)} | {' '.join(f'{v:.0f}' for v in full)})"
        )
    finally:
        fw.stop()
    return statistics.median(empty), statistics.median(full)


def _loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=6, help="small-call measurements per workload and server")
    parser.add_argument("--big-reps", type=int, default=6, help="DoGet/DoPut transfers per server and mode")
    parser.add_argument("--seconds", type=float, default=1.2, help="duration of one small-call measurement")
    parser.add_argument("--table-mib", type=int, default=1024, help="size of the big table")
    parser.add_argument("--modes", default="off,on", help="auth+metrics modes to run: off, on or both")
    parser.add_argument(
        "--workloads",
        default="doget,doput,action_1,action_8,info_1,info_8,task_1,task_8,pooltask_8,scaling",
        help="comma-separated subset to run",
    )
    parser.add_argument("--stored", type=int, default=10_000, help="stored results for the scaling check")
    parser.add_argument(
        "--peer",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"also run the service on the original gooddata-flight-server {original.ORIGINAL_VERSION}",
    )
    parser.add_argument(
        "--framework-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment variable for the framework servers "
        "(e.g. GOODDATA_FLIGHT_SERVER__HOLD_THREAD_STATE=false)",
    )
    args = parser.parse_args(argv)
    wanted = args.workloads.split(",")
    framework_env = dict(item.split("=", 1) for item in args.framework_env)

    started = time.monotonic()
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"pyarrow {pyarrow.__version__}; table {args.table_mib} MiB; {args.reps} reps "
        f"({args.big_reps} for DoGet/DoPut); small calls {args.seconds:g} s each; "
        f"load average {_loadavg()} (other work on the machine adds noise)"
        + (f"; framework env {framework_env}" if framework_env else ""),
        flush=True,
    )
    table = big_table(args.table_mib) if "doput" in wanted else None
    workloads: list[tuple[str, str, Run, int]] = []
    if "doget" in wanted:
        workloads.append(("doget", "GB/s", do_get_big, args.big_reps))
    if table is not None:
        workloads.append(("doput", "GB/s", do_put_big(table), args.big_reps))
    for name in ("action", "info", "task", "pooltask"):
        for threads in (1, 8):
            if f"{name}_{threads}" in wanted:
                run = small_calls(CALLS[name], threads, args.seconds)
                workloads.append((f"{name}_{threads}", "calls/s", run, args.reps))

    peer_skipped: list[str] = []
    peer = bool(args.peer and workloads)
    if peer:
        try:
            print(f"original: {original.install()}", flush=True)
        except original.PeerUnavailable as e:
            peer = False
            peer_skipped.append(str(e))
            print(f"PEER skipped: {e}", flush=True)

    rows: list[Row] = []
    big = args.table_mib if any(w in wanted for w in ("doget", "doput")) else 0
    with tempfile.TemporaryDirectory(prefix="gdfs-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if workloads:
            print(HEADER, flush=True)
        for mode in args.modes.split(","):
            if not workloads:
                break
            auth = mode == "on"
            with servers(tmp, auth, big, peer, peer_skipped, framework_env=framework_env) as serving:
                for name, unit, run, reps in workloads:
                    row = Row(name, mode, unit)
                    measure(row, run, serving, auth=auth, reps=reps)
                    rows.append(row)
        scale: tuple[float, float] | None = None
        if "scaling" in wanted:
            scale = scaling_check(tmp, args.stored, 8, args.seconds, 3)

    print()
    for row in rows:
        print(f"RATIO {row.name} {_fmt(row.ratio, '.3f')}")
    for reason in peer_skipped:
        print(f"PEER skipped: {reason}")
    for row in rows:
        if row.peer is not None:
            print(f"PEER {row.name} {row.peer:.3f}")
        elif row.peer_error is not None:
            print(f"PEER skipped: {row.name}: {row.peer_error}")
    if scale is not None:
        print(f"SCALE task_8.stored_{args.stored}_vs_0 {scale[1] / scale[0]:.3f}")
    print(f"total {time.monotonic() - started:.0f} s; load average {_loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
