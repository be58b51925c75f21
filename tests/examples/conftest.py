"""A running SQL data service per test, on a free loopback port with its own data directory."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pyarrow
import pyarrow.flight as flight
import pytest
from examples.sql_service.main import sql_service

import gooddata_flight_server as gf
from gooddata_flight_server.testing import running_server


class Service:
    """A running SQL service and a client of it, with shorthands for the calls tests make."""

    def __init__(self, server: gf.GoodDataFlightServer, data_dir: Path) -> None:
        self.server = server
        self.data_dir = data_dir
        self.client = flight.FlightClient(server.location)

    def info(self, sql: str, options: flight.FlightCallOptions | None = None) -> flight.FlightInfo:
        return self.client.get_flight_info(flight.FlightDescriptor.for_command(sql), options)

    def query(self, sql: str) -> pyarrow.Table:
        info = self.info(sql)
        return self.client.do_get(info.endpoints[0].ticket).read_all()

    def scalar(self, sql: str) -> Any:
        return self.query(sql).column(0)[0].as_py()

    def action(self, name: str, body: bytes = b"") -> Any:
        (result,) = list(self.client.do_action(flight.Action(name, body)))
        return orjson.loads(result.body.to_pybytes())

    def put(self, table: str, data: pyarrow.Table) -> dict[str, Any]:
        writer, metadata = self.client.do_put(flight.FlightDescriptor.for_path(table), data.schema)
        writer.write_table(data)
        writer.done_writing()
        ack = metadata.read()
        writer.close()
        assert ack is not None
        return dict(orjson.loads(ack.to_pybytes()))


def error_info(e: pytest.ExceptionInfo[flight.FlightError]) -> gf.ErrorInfo:
    return gf.ErrorInfo.from_pyarrow_error(e.value)


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Start SQL services (data in tmp_path/data unless settings say otherwise); all stopped at the end."""
    with contextlib.ExitStack() as stack:

        def _start(server: Mapping[str, Any] | None = None, **sql_settings: Any) -> Service:
            data_dir = Path(sql_settings.pop("data_dir", tmp_path / "data"))
            settings = {
                "sql_service": {"data_dir": str(data_dir), **sql_settings},
                "server": dict(server or {}),
            }
            service = Service(stack.enter_context(running_server(sql_service, settings)), data_dir)
            stack.callback(service.client.close)
            return service

        yield _start


@pytest.fixture
def service(start_service: Callable[..., Service]) -> Service:
    return start_service()
