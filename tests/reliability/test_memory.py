"""Memory: after big DoPuts and an idle housekeeping interval, the server's RSS returns near its baseline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow
import pyarrow.compute as pc
import pyarrow.flight as flight
import pytest

from tests.conftest import ServerProcess
from tests.reliability.conftest import rss_bytes, start_cli_server, wait_until

MIB = 1 << 20


def _table(mib: int) -> pyarrow.Table:
    """``mib`` MiB of int64 in 8 MiB batches, each with its own buffers."""
    rows = 1 << 20  # 8 MiB per batch
    base = pyarrow.array(range(rows), pyarrow.int64())
    return pyarrow.Table.from_batches(
        [pyarrow.record_batch({"n": pc.add(base, i)}) for i in range(max(1, mib // 8))]
    )


def _put(client: flight.FlightClient, table: pyarrow.Table) -> int:
    writer, metadata = client.do_put(flight.FlightDescriptor.for_path("upload"), table.schema)
    writer.write_table(table)
    writer.done_writing()
    received = int(metadata.read().to_pybytes())
    writer.close()
    return received


@pytest.mark.parametrize(
    ("puts", "mib"), [(6, 128), pytest.param(20, 256, marks=pytest.mark.slow)], ids=["6x128MiB", "20x256MiB"]
)
def test_rss_returns_near_baseline_after_big_puts(
    puts: int, mib: int, tmp_path: Path, spawn: Callable[..., ServerProcess], record_property: object
) -> None:
    """Big DoPuts raise the RSS by half a put or more; idle past the housekeeping interval, it falls back."""
    proc, uri = start_cli_server(spawn, tmp_path, {"malloc_trim_interval_sec": 0.5})
    pid = proc.proc.pid
    table = _table(mib)
    with flight.FlightClient(uri) as client:
        _put(client, _table(8))  # warm-up: gRPC threads and buffers that any server keeps
        baseline = rss_bytes(pid)
        peak = [baseline]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.01):
                peak[0] = max(peak[0], rss_bytes(pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            for _ in range(puts):
                assert _put(client, table) == table.nbytes
        finally:
            sampling.set()
            sampler.join()
        after_puts = rss_bytes(pid)
        # what trimming cannot give back varies (fragmented arenas): +5..+40 MiB seen after 6 x 128 MiB,
        # +15..+125 MiB after 20 x 256 MiB; without the housekeeping the RSS stays +290 MiB and
        # +1.8 GiB above the baseline
        tolerance = 64 * MIB + mib * MIB // 2
        started = time.monotonic()
        try:
            wait_until(
                lambda: rss_bytes(pid) <= baseline + tolerance, "RSS back near its baseline", timeout=30
            )
        except AssertionError as e:
            raise AssertionError(
                f"{e}: baseline {baseline // MIB} MiB, peak {peak[0] // MIB} MiB, after the puts "
                f"{after_puts // MIB} MiB, now {rss_bytes(pid) // MIB} MiB"
            ) from None
        settled = time.monotonic() - started
        record_property(
            "rss_mib",
            {
                "baseline": baseline // MIB,
                "peak": peak[0] // MIB,
                "after_puts": after_puts // MIB,
                "settled": rss_bytes(pid) // MIB,
                "settle_sec": round(settled, 1),
            },
        )
    assert peak[0] - baseline >= mib * MIB // 2, "the puts never raised the RSS: the test proves nothing"
