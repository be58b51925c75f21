"""The benchmark harness: the framework against raw ``pyarrow.flight``, same run, alternating.

``python -m benchmarks.run`` (what ``make bench`` runs), from the repository root. For each mode
(auth+metrics off, then on) it starts a raw server and a framework server, each in its own process,
and measures every workload from this process against both in turn, alternating which goes first,
``--reps`` times; it reports medians, a table and one ``RATIO <name> <framework/raw>`` line per
workload. Finally it checks on the framework server that the task round trip does not slow down
with 10,000 stored task results (``SCALE`` line).
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

from benchmarks.common import TOKENS, big_table, call_options, free_port, wait_until_serving
from benchmarks.workloads import CALLS, Measurement, do_get_big, do_put_big, small_calls

REPO = Path(__file__).resolve().parent.parent

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


def start_framework(tmp: Path, auth: bool, table_mib: int, tag: str = "") -> Server:
    port = free_port()
    name = f"framework-{'on' if auth else 'off'}{tag}"
    config = tmp / f"{name}.toml"
    config.write_text(framework_config(port, auth, table_mib))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOODDATA_FLIGHT_")}
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


@contextlib.contextmanager
def servers(tmp: Path, auth: bool, table_mib: int) -> Iterator[tuple[Server, Server]]:
    raw = start_raw(tmp, auth, table_mib)
    fw = start_framework(tmp, auth, table_mib)
    try:
        for server in (raw, fw):
            try:
                wait_until_serving(server.uri, auth)
            except TimeoutError:
                print(server.log.read_text(), file=sys.stderr)
                raise
        yield raw, fw
    finally:
        raw.stop()
        fw.stop()


@dataclasses.dataclass
class Row:
    workload: str
    mode: str
    unit: str
    raw: list[Measurement] = dataclasses.field(default_factory=list)
    framework: list[Measurement] = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.workload}.{self.mode}"

    @staticmethod
    def median(ms: list[Measurement]) -> float:
        return statistics.median(m.value for m in ms)

    @staticmethod
    def latency(ms: list[Measurement], p: float) -> float | None:
        values = [v for m in ms if (v := m.percentile(p)) is not None]
        return statistics.median(values) if values else None

    @staticmethod
    def cpu_per_work(ms: list[Measurement]) -> float:
        """Server CPU per unit of work: seconds per GB, or microseconds per call."""
        return statistics.median(m.server_cpu / m.work for m in ms if m.work)

    @property
    def ratio(self) -> float:
        """framework / raw of the medians: the RATIO line."""
        return self.median(self.framework) / self.median(self.raw)

    @property
    def paired_ratio(self) -> float:
        """Median of the per-repetition ratios (each pair measured back to back): less drift."""
        return statistics.median(f.value / r.value for r, f in zip(self.raw, self.framework, strict=True))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_one(run: Run, server: Server, auth: bool) -> Measurement:
    before = cpu_seconds(server.proc.pid)
    result = run(server.uri, auth)
    return dataclasses.replace(result, server_cpu=cpu_seconds(server.proc.pid) - before)


def measure(row: Row, run: Run, raw: Server, fw: Server, *, auth: bool, reps: int) -> None:
    if row.unit == "GB/s":
        # one unmeasured transfer each first: the client's first gigabyte faults in fresh pages,
        # which would penalise whichever server happens to go first
        for server in (raw, fw):
            run(server.uri, auth)
    for rep in range(reps):
        order = [(raw, row.raw), (fw, row.framework)]
        if rep % 2:
            order.reverse()
        for server, samples in order:
            samples.append(measure_one(run, server, auth))
    _print_row(row)


def _fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


HEADER = (
    f"{'workload':<12} {'mode':<4} {'unit':<8} {'raw':>10} {'framework':>10} {'ratio':>6} {'paired':>6}"
    f"  {'raw p50/p99 ms':>16}  {'fw p50/p99 ms':>16}  {'server CPU raw|fw':>18}  samples raw | framework"
)


def _print_row(row: Row) -> None:
    digits = 3 if row.unit == "GB/s" else 0
    raw_lat = f"{_fmt_ms(row.latency(row.raw, 50))}/{_fmt_ms(row.latency(row.raw, 99))}"
    fw_lat = f"{_fmt_ms(row.latency(row.framework, 50))}/{_fmt_ms(row.latency(row.framework, 99))}"
    samples = (
        " ".join(f"{m.value:.{digits}f}" for m in row.raw)
        + " | "
        + " ".join(f"{m.value:.{digits}f}" for m in row.framework)
    )
    scale, cpu_unit = (1.0, "s/GB") if row.unit == "GB/s" else (1e6, "us/call")
    cpu = f"{row.cpu_per_work(row.raw) * scale:.2f}|{row.cpu_per_work(row.framework) * scale:.2f} {cpu_unit}"
    print(
        f"{row.workload:<12} {row.mode:<4} {row.unit:<8} {row.median(row.raw):>10.{digits}f} "
        f"{row.median(row.framework):>10.{digits}f} {row.ratio:>6.3f} {row.paired_ratio:>6.3f}  "
        f"{raw_lat:>16}  {fw_lat:>16}  {cpu:>18}  {samples}",
        flush=True,
    )


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
    parser.add_argument("--reps", type=int, default=5, help="small-call measurements per workload and server")
    parser.add_argument("--big-reps", type=int, default=7, help="DoGet/DoPut transfers per server and mode")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of one small-call measurement")
    parser.add_argument("--table-mib", type=int, default=1024, help="size of the big table")
    parser.add_argument("--modes", default="off,on", help="auth+metrics modes to run: off, on or both")
    parser.add_argument(
        "--workloads",
        default="doget,doput,action_1,action_8,info_1,info_8,task_1,task_8,pooltask_8,scaling",
        help="comma-separated subset to run",
    )
    parser.add_argument("--stored", type=int, default=10_000, help="stored results for the scaling check")
    args = parser.parse_args(argv)
    wanted = args.workloads.split(",")

    started = time.monotonic()
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"pyarrow {pyarrow.__version__}; table {args.table_mib} MiB; {args.reps} reps "
        f"({args.big_reps} for DoGet/DoPut); small calls {args.seconds:g} s each; "
        f"load average {_loadavg()} (other work on the machine adds noise)",
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
            with servers(tmp, auth, big) as (raw, fw):
                for name, unit, run, reps in workloads:
                    row = Row(name, mode, unit)
                    measure(row, run, raw, fw, auth=auth, reps=reps)
                    rows.append(row)
        scale: tuple[float, float] | None = None
        if "scaling" in wanted:
            scale = scaling_check(tmp, args.stored, 8, args.seconds, max(3, args.reps - 2))

    print()
    for row in rows:
        print(f"RATIO {row.name} {row.ratio:.3f}")
    if scale is not None:
        print(f"SCALE task_8.stored_{args.stored}_vs_0 {scale[1] / scale[0]:.3f}")
    print(f"total {time.monotonic() - started:.0f} s; load average {_loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
