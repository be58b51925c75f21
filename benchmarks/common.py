"""What the raw server, the framework service and the client agree on: data, names, tokens.

Both servers run the same user-level work for every workload, so that the difference measured is
what the framework adds around it (middleware, error boundary, metrics, task bookkeeping).
"""

from __future__ import annotations

import hmac
import socket
import time

import pyarrow
import pyarrow.compute as pc
import pyarrow.flight

TOKENS = ("bench-token-1", "bench-token-2", "bench-token-3")
CLIENT_TOKEN = TOKENS[1]

BIG_TICKET = b"big"
ACTION_PING = "ping"
INFO_COMMAND = b"info"
TASK_COMMAND = b"task"
POOL_TASK_COMMAND = b"task-on-pool"  # the task work on a plain ThreadPoolExecutor, in both servers

ROWS_PER_BATCH = 256 * 1024  # 4 int64/float64 columns: 8 MiB per record batch
_COLUMNS = 4

SMALL_TABLE = pyarrow.table({"id": pyarrow.array([1, 2, 3], pyarrow.int64()), "name": ["a", "b", "c"]})
SMALL_SCHEMA = SMALL_TABLE.schema


def big_table(mib: int) -> pyarrow.Table:
    """An in-memory table of about ``mib`` MiB in record batches of 8 MiB, built once per process.

    Every batch has buffers of its own (no batch repeats another's memory), so streaming it reads
    ``mib`` MiB of distinct memory as a real table would.
    """
    batches = max(1, mib * 1024 * 1024 // (_COLUMNS * 8 * ROWS_PER_BATCH))
    base = pyarrow.array(range(ROWS_PER_BATCH), pyarrow.int64())
    half = pc.multiply(pc.cast(base, pyarrow.float64()), 0.5)
    out = []
    for i in range(batches):
        offset = i * ROWS_PER_BATCH
        out.append(
            pyarrow.record_batch(
                {
                    "a": pc.add(base, offset),
                    "b": pc.multiply(base, i + 3),
                    "c": pc.add(half, float(offset)),
                    "d": pc.subtract(half, float(i)),
                }
            )
        )
    return pyarrow.Table.from_batches(out)


def small_flight_info(
    descriptor: pyarrow.flight.FlightDescriptor, location: str
) -> pyarrow.flight.FlightInfo:
    """The answer to a small GetFlightInfo: one endpoint, a two-column schema."""
    return pyarrow.flight.FlightInfo(
        SMALL_SCHEMA,
        descriptor,
        [pyarrow.flight.FlightEndpoint(b"small", [location])],
        total_records=3,
        total_bytes=-1,
    )


def token_matches(token: str) -> bool:
    """Constant-time comparison against every enumerated token, as the framework's strategy does."""
    given = token.encode()
    found = False
    for candidate in TOKENS:
        found |= hmac.compare_digest(given, candidate.encode())
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call_options(auth: bool, timeout: float | None = None) -> pyarrow.flight.FlightCallOptions:
    headers = [(b"authorization", f"Bearer {CLIENT_TOKEN}".encode())] if auth else []
    return pyarrow.flight.FlightCallOptions(headers=headers, timeout=timeout)


def wait_until_serving(uri: str, auth: bool, timeout: float = 120.0) -> None:
    """Poll a ping action until the server answers (it is still building its table before that)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    with pyarrow.flight.FlightClient(uri) as client:
        while time.monotonic() < deadline:
            try:
                list(client.do_action(pyarrow.flight.Action(ACTION_PING, b""), call_options(auth, 2.0)))
                return
            except pyarrow.flight.FlightError as e:  # UNAVAILABLE while binding or NOT_READY
                last = e
                time.sleep(0.1)
    raise TimeoutError(f"{uri} did not serve within {timeout} s: {last}")
