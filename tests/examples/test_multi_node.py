"""Several replicas of the SQL service on loopback: each advertises itself, so results are fetched
from the replica that holds them."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pyarrow
import pyarrow.flight as flight
import pytest

import gooddata_flight_server as gf
from tests.conftest import CLI, EXAMPLES, ServerProcess

REPLICAS = 3


def _start_replica(spawn: Callable[..., ServerProcess], data_dir: Path) -> ServerProcess:
    return spawn(
        [*CLI, "start", "--methods-provider", "sql_service.main", "--config", "sql_service/config.toml"],
        cwd=EXAMPLES,
        env={
            "GOODDATA_FLIGHT_SERVER__LISTEN_PORT": "0",  # each replica binds a port of its own
            "GOODDATA_FLIGHT_SERVER__ADVERTISE_HOST": "127.0.0.1",
            "GOODDATA_FLIGHT_SERVER__HEALTH_CHECK_PORT": "0",
            "GOODDATA_FLIGHT_SERVER__METRICS_PORT": "0",
            "GOODDATA_FLIGHT_SQL_SERVICE__DATA_DIR": str(data_dir),
        },
    )


def test_get_flight_info_points_at_the_replica_that_holds_the_result(
    tmp_path: Path, spawn: Callable[..., ServerProcess]
) -> None:
    """GetFlightInfo on each of 3 replicas gives an endpoint on that replica, which serves the data."""
    procs = [_start_replica(spawn, tmp_path / f"replica-{i}") for i in range(REPLICAS)]
    started = [proc.wait_for_event("server_started", timeout=60) for proc in procs]
    locations = [flight.Location(event["location"]) for event in started]
    assert len({event["port"] for event in started}) == REPLICAS

    clients = [flight.FlightClient(location) for location in locations]
    try:
        for i, client in enumerate(clients):  # give every replica data of its own to tell them apart
            writer, _ = client.do_put(
                flight.FlightDescriptor.for_path("whoami"), pyarrow.schema([("name", "string")])
            )
            writer.write_table(pyarrow.table({"name": [f"replica-{i}"]}))
            writer.close()

        for i, client in enumerate(clients):
            info = client.get_flight_info(flight.FlightDescriptor.for_command("SELECT name FROM whoami"))
            (endpoint,) = info.endpoints
            (location,) = endpoint.locations
            assert location.uri == locations[i].uri

            other = clients[(i + 1) % REPLICAS]
            with pytest.raises(flight.FlightServerError) as e:
                other.do_get(endpoint.ticket).read_all()
            assert gf.ErrorInfo.from_pyarrow_error(e.value).code == gf.ErrorCode.INVALID_TICKET

            with flight.FlightClient(location) as follower:
                table = follower.do_get(endpoint.ticket).read_all()
            assert table.column("name").to_pylist() == [f"replica-{i}"]
    finally:
        for client in clients:
            client.close()

    for proc in procs:
        proc.signal(signal.SIGTERM)
    assert [proc.wait() for proc in procs] == [0] * REPLICAS
