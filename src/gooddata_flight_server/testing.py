"""Helpers for testing a data service against a real server.

``running_server`` starts a server with the given methods and settings on a free loopback port and
always stops it, so a test gets a real endpoint and cannot leak a listening server::

    with running_server(my_service, settings={"my_service": {"opt1": "x"}}) as server:
        client = pyarrow.flight.FlightClient(server.location)
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson
from opentelemetry import trace
from prometheus_client.registry import CollectorRegistry

from gooddata_flight_server.methods import FlightServerMethods, FlightServerMethodsFactory
from gooddata_flight_server.server import GoodDataFlightServer, create_server
from gooddata_flight_server.settings import ServerConfig

__all__ = ["running_server", "to_toml"]

_LOOPBACK_DEFAULTS = {"listen_host": "127.0.0.1", "listen_port": 0, "advertise_host": "127.0.0.1"}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value!r} as a TOML setting")
        return repr(value)
    if isinstance(value, str):
        return orjson.dumps(value).decode()  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return (
            "{"
            + ", ".join(f"{orjson.dumps(str(k)).decode()} = {_toml_value(v)}" for k, v in value.items())
            + "}"
        )
    raise TypeError(f"cannot write {type(value).__name__} as a TOML setting")


def to_toml(settings: Mapping[str, Mapping[str, Any]]) -> str:
    """Render ``{section: {key: value}}`` as TOML, for tests that need a real config file."""
    lines: list[str] = []
    for section, values in settings.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    return "\n".join(lines)


@contextlib.contextmanager
def running_server(
    methods: FlightServerMethods | FlightServerMethodsFactory,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    config: ServerConfig | None = None,
    config_files: Sequence[str | os.PathLike[str]] = (),
    logging_config: str | os.PathLike[str] | None = None,
    dev_log: bool = False,
    setup_logging: bool | None = None,
    registry: CollectorRegistry | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    start_timeout: float = 30.0,
    stop_timeout: float = 60.0,
) -> Iterator[GoodDataFlightServer]:
    """Start a server on a free 127.0.0.1 port, yield it started, and stop it however the block ends.

    ``settings`` (``{section: {key: value}}``) is merged over ``config_files`` in memory; the
    environment still overrides both, as in production. Unless ``settings["server"]`` says
    otherwise, the server listens on and advertises 127.0.0.1 with a free port. ``config`` is a
    ``ServerConfig`` built in code, used as it is (then ``settings`` only feeds other sections).

    ``registry`` and ``tracer_provider`` are handed to :func:`create_server` (a registry of the
    test's own keeps its metrics apart from other tests'). Logging is configured only when
    ``logging_config`` is given (or ``setup_logging=True``), so the test's own capture
    (``caplog``, ``structlog.testing.capture_logs``) keeps working.
    """
    merged: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (settings or {}).items()}
    if config is None:
        merged["server"] = {**_LOOPBACK_DEFAULTS, **merged.get("server", {})}
    server = create_server(
        methods,
        config_files=config_files,
        logging_config=logging_config,
        dev_log=dev_log,
        config=config,
        settings=merged,
        setup_logging=logging_config is not None if setup_logging is None else setup_logging,
        registry=registry,
        tracer_provider=tracer_provider,
    )
    server.start()
    try:
        if not server.wait_for_start(start_timeout):
            raise TimeoutError(f"the server did not start within {start_timeout} s")
        yield server
    finally:
        server.stop()
        if not server.wait_for_stop(stop_timeout):
            server.abort()
            server.wait_for_stop(stop_timeout)
