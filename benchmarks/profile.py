"""Profile one server under one workload with py-spy (``pip install py-spy``; not a project dependency).

``python -m benchmarks.profile --workload action_8 --mode on [--server framework|raw|original] [--gil]``

Starts the server, drives the workload from this process for ``--seconds`` while py-spy samples the
server process, and prints the hottest functions (self time and inclusive time) from py-spy's
collapsed stacks; the raw stacks are kept in ``--out`` for a flame graph.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from benchmarks import original
from benchmarks.common import wait_until_serving
from benchmarks.run import Run, start_framework, start_original, start_raw
from benchmarks.workloads import CALLS, do_get_big, small_calls


def summarize(collapsed: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    lines.append("inclusive:")
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", default="action_8", help="action_1, info_8, task_8, doget, ...")
    parser.add_argument("--mode", default="on", choices=["on", "off"])
    parser.add_argument("--server", default="framework", choices=["framework", "raw", "original"])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--gil", action="store_true", help="only samples of threads holding the GIL")
    parser.add_argument("--native", action="store_true", help="include native (C/C++) frames")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=Path("profile.txt"))
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    auth = args.mode == "on"
    big = args.workload in ("doget", "doput")
    with tempfile.TemporaryDirectory(prefix="gdfs-profile-") as tmp_name:
        tmp = Path(tmp_name)
        if args.server == "original":
            print(f"original: {original.install()}")
        start = {"framework": start_framework, "raw": start_raw, "original": start_original}[args.server]
        server = start(tmp, auth, 1024 if big else 0)
        try:
            wait_until_serving(server.uri, auth)
            run: Run
            if big:
                run = do_get_big
            else:
                name, _, threads = args.workload.rpartition("_")
                run = small_calls(CALLS[name], int(threads), args.seconds + 1.0)
            command = [
                py_spy,
                "record",
                "--pid",
                str(server.proc.pid),
                "--duration",
                str(int(args.seconds)),
                "--rate",
                str(args.rate),
                "--format",
                "raw",
                "--output",
                str(args.out),
            ]
            # sampling native stacks has to pause the process; Python-only sampling does not
            command += [] if args.native else ["--nonblocking"]
            command += ["--gil"] if args.gil else []
            command += ["--native"] if args.native else []
            spy = threading.Thread(target=subprocess.run, args=(command,), kwargs={"check": True})
            spy.start()
            if big:
                while spy.is_alive():
                    run(server.uri, auth)
            else:
                result = run(server.uri, auth)
                print(
                    f"{args.workload} {args.mode} {args.server}: {result.value:.0f} calls/s (while sampled)"
                )
            spy.join()
        finally:
            server.stop()
    print(summarize(args.out, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
