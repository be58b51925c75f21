"""Bad input: property-based fuzzing of tickets, commands, actions, auth headers and config values.

One token-authenticated server serves the whole module. Whatever a client sends, the answer is a
Flight error (or a result), never anything else, and the server keeps serving; whatever a config
holds, loading it succeeds or raises ``ConfigError``.
"""

from __future__ import annotations

import contextlib
import json
import os
import string
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow.flight as flight
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gooddata_flight_server._settings_load import load_settings
from gooddata_flight_server.settings import ConfigError
from gooddata_flight_server.testing import to_toml
from tests.reliability.conftest import idle, in_process, wait_until
from tests.reliability.service import ReliabilityMethods, executor_state

TOKEN = "good-token"
_AUTH = [(b"authorization", f"Bearer {TOKEN}".encode())]
EXAMPLES = [500, pytest.param(5000, marks=pytest.mark.slow)]

# Kinds that block on purpose (the fault tests use them); no fuzzed input may name them.
_BLOCKING_TASKS = {"hang", "wait"}
_BLOCKING_ACTIONS = {"work"}


def fuzz(examples: int, strategy: st.SearchStrategy[Any], check: Callable[[Any], None]) -> int:
    """Run ``check`` on up to ``examples`` generated inputs; returns how many were tried."""
    tried = [0]

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def run(value: Any) -> None:
        tried[0] += 1
        check(value)

    run()
    return tried[0]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[flight.FlightClient, flight.FlightCallOptions, ReliabilityMethods]]:
    settings_ = {
        "server": {"authentication_method": "token", "task_result_ttl_sec": 0.5},
        "enumerated_tokens": {"tokens": [TOKEN]},
    }
    with in_process(settings_) as (server, methods):
        with flight.FlightClient(server.location) as client:
            yield client, flight.FlightCallOptions(headers=_AUTH, timeout=30), methods


def _read_some(reader: flight.FlightStreamReader, chunks: int = 3) -> None:
    """Read the first chunks of a stream and drop the rest: fuzzed counts may ask for gigabytes."""
    try:
        for _ in range(chunks):
            reader.read_chunk()
    except StopIteration:
        return
    reader.cancel()


def _still_serving(client: flight.FlightClient, options: flight.FlightCallOptions, methods: Any) -> None:
    assert [r.body.to_pybytes() for r in client.do_action(flight.Action("ping", b""), options)] == [b"pong"]
    wait_until(lambda: idle(executor_state(methods.executor)), "every fuzzed task is gone")


_TICKETS = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=100).map(str.encode),
    st.tuples(st.sampled_from(["rows", "stream", "", "task"]), st.text(max_size=30)).map(
        lambda t: f"{t[0]}:{t[1]}".encode()
    ),
    st.integers(min_value=-(10**20), max_value=10**20).map(lambda n: f"rows:{n}".encode()),
    st.uuids().map(lambda u: u.hex.encode()),
)


@pytest.mark.parametrize("examples", EXAMPLES)
def test_fuzzed_tickets_get_flight_errors(examples: int, served: Any, record_property: Any) -> None:
    """Any DoGet ticket is answered with data or a Flight error; the server keeps serving."""
    client, options, methods = served

    def check(ticket: bytes) -> None:
        with contextlib.suppress(flight.FlightError):
            _read_some(client.do_get(flight.Ticket(ticket), options))

    record_property("inputs", fuzz(examples, _TICKETS, check))
    _still_serving(client, options, methods)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
_SPEC = st.fixed_dictionaries(
    {"kind": st.sampled_from(["table", "reader", "raise", "nonsense"]) | st.text(max_size=10)},
    optional={
        "rows": _JSON | st.integers(min_value=-(10**12), max_value=10**12),
        "batches": _JSON | st.integers(min_value=-(10**9), max_value=10**9),
        "error": st.sampled_from(["value", "flight", "runtime"]) | _JSON,
    },
).filter(lambda spec: spec["kind"] not in _BLOCKING_TASKS)


def _dumps(value: Any) -> bytes:
    """JSON as any client may write it: big integers, Infinity and all."""
    return json.dumps(value).encode()


_COMMANDS = st.one_of(
    st.binary(max_size=300).filter(lambda b: b.strip() not in (b'"hang"', b'"wait"')),
    _JSON.map(_dumps),
    _SPEC.map(_dumps),
)


@pytest.mark.parametrize("examples", EXAMPLES)
def test_fuzzed_commands_get_flight_errors(examples: int, served: Any, record_property: Any) -> None:
    """Any GetFlightInfo command (run as a task) answers a FlightInfo or a Flight error."""
    client, options, methods = served

    def check(command: bytes) -> None:
        try:
            info = client.get_flight_info(flight.FlightDescriptor.for_command(command), options)
            _read_some(client.do_get(info.endpoints[0].ticket, options))
        except flight.FlightError:
            pass

    record_property("inputs", fuzz(examples, _COMMANDS, check))
    _still_serving(client, options, methods)


_ACTIONS = st.tuples(
    st.sampled_from(["ping", "echo", "state"])
    | st.text(max_size=40).filter(lambda t: t not in _BLOCKING_ACTIONS),
    st.binary(max_size=2000),
)


@pytest.mark.parametrize("examples", EXAMPLES)
def test_fuzzed_actions_get_flight_errors(examples: int, served: Any, record_property: Any) -> None:
    """Any DoAction type and body is answered with results or a Flight error; echo returns the body."""
    client, options, methods = served

    def check(type_and_body: tuple[str, bytes]) -> None:
        kind, body = type_and_body
        try:
            results = [r.body.to_pybytes() for r in client.do_action(flight.Action(kind, body), options)]
        except flight.FlightError:
            assert kind not in ("ping", "echo", "state")
            return
        if kind == "echo":
            assert results == [body]

    record_property("inputs", fuzz(examples, _ACTIONS, check))
    _still_serving(client, options, methods)


_HEADER_TEXT = st.text(alphabet=string.ascii_letters + string.digits + string.punctuation + " ", max_size=60)
_AUTH_VALUES = st.one_of(
    _HEADER_TEXT,
    _HEADER_TEXT.map(lambda t: f"Bearer {t}"),
    st.sampled_from(
        [
            "Bearer",
            "Bearer ",
            "bearer good-token",
            f"Bearer {TOKEN}",
            f"Bearer  {TOKEN} ",
            f" Bearer {TOKEN}",
            TOKEN,
        ]
    ),
)
_HEADERS = st.one_of(
    st.lists(_AUTH_VALUES, max_size=3).map(lambda vs: [(b"authorization", v.encode()) for v in vs]),
    st.lists(st.binary(max_size=40), min_size=1, max_size=2).map(
        lambda vs: [(b"authorization-bin", v) for v in vs]
    ),
)


def _accepted(headers: list[tuple[bytes, bytes]]) -> bool:
    """The rule: exactly one ``authorization`` header: the scheme ``Bearer`` in any letter case
    (RFC 7235), blanks, then the token, blanks around the whole value ignored."""
    if len(headers) != 1 or headers[0][0] != b"authorization":
        return False
    scheme, _, token = headers[0][1].decode().strip().partition(" ")
    return scheme.lower() == "bearer" and token.strip() == TOKEN


@pytest.mark.parametrize("examples", EXAMPLES)
def test_fuzzed_auth_headers_are_accepted_exactly_when_valid(
    examples: int, served: Any, record_property: Any
) -> None:
    """Any authorization header is accepted only when it is one valid bearer token, else UNAUTHENTICATED."""
    client, options, methods = served

    def check(headers: list[tuple[bytes, bytes]]) -> None:
        try:
            list(client.do_action(flight.Action("ping", b""), flight.FlightCallOptions(headers=headers)))
        except flight.FlightUnauthenticatedError:
            assert not _accepted(headers), headers
        else:
            assert _accepted(headers), headers

    record_property("inputs", fuzz(examples, _HEADERS, check))
    _still_serving(client, options, methods)


_SETTING_NAMES = [
    "listen_host",
    "listen_port",
    "advertise_port",
    "use_tls",
    "use_mtls",
    "tls_certificate",
    "authentication_method",
    "token_header_name",
    "token_verification",
    "task_threads",
    "task_close_threads",
    "task_result_ttl_sec",
    "task_queue_size",
    "metrics_host",
    "metrics_port",
    "health_check_port",
    "malloc_trim_interval_sec",
    "log_event_key_name",
    "log_trace_keys",
    "otel_exporter_type",
    "otel_service_name",
    "otel_extract_context",
    "shutdown_timeout_sec",
]
_TOML_VALUES = st.recursive(
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
_CONFIGS = st.tuples(
    st.dictionaries(
        st.sampled_from(_SETTING_NAMES) | st.text(min_size=1, max_size=12), _TOML_VALUES, max_size=4
    ),
    st.dictionaries(st.sampled_from(_SETTING_NAMES).map(str.upper), st.text(max_size=30), max_size=2),
)


@pytest.mark.parametrize("examples", [200, pytest.param(2000, marks=pytest.mark.slow)])
def test_fuzzed_config_values_load_or_raise_config_error(examples: int, record_property: Any) -> None:
    """Any [server] values from a file and the environment either load or raise ConfigError."""
    with tempfile.TemporaryDirectory(prefix="gdfs-fuzz-") as tmp:
        path = Path(tmp) / "fuzz.toml"

        def check(config: tuple[dict[str, Any], dict[str, str]]) -> None:
            from_file, from_env = config
            path.write_text(to_toml({"server": {"advertise_host": "127.0.0.1", **from_file}}))
            env = {f"GOODDATA_FLIGHT_SERVER__{k}": v for k, v in from_env.items() if "\0" not in v}
            clean = {k: v for k, v in os.environ.items() if not k.startswith("GOODDATA_FLIGHT_")}
            with mock.patch.dict(os.environ, {**clean, **env}, clear=True):
                try:
                    load_settings([path])
                except ConfigError as e:
                    assert e.problems and all(isinstance(p, str) and p for p in e.problems)

        record_property("inputs", fuzz(examples, _CONFIGS, check))
