"""The seed README's smaller code examples, as written there, against a real server."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pyarrow.flight
import pytest
import structlog
from opentelemetry import trace
from prometheus_client import Counter

import gooddata_flight_server as gf
from gooddata_flight_server.testing import running_server

# --- "Logging" -------------------------------------------------------------------------------------
_LOGGER = structlog.get_logger("my_service")

# --- "Prometheus Metrics" --------------------------------------------------------------------------
MY_COUNTER = Counter(
    "my_counter",
    "Fitting description of `my_counter`.",
)


def some_function():  # type: ignore[no-untyped-def]
    # ...
    MY_COUNTER.inc()


# --- "Open Telemetry" ------------------------------------------------------------------------------
MY_TRACER: trace.Tracer = trace.ProxyTracer("my_tracer")


# --- "Health Checks" -------------------------------------------------------------------------------
class YourMissionCriticalComponent:
    """
    Let's say this component is used to perform some heavy lifting / important job.

    The component is created in your service's factory and is used during Flight RPC
    invocation. You propagate the `health` monitor to it at construction time.
    """

    def __init__(self, health: gf.ServerHealthMonitor) -> None:
        self._health = health

    def some_important_method(self):  # type: ignore[no-untyped-def]
        try:
            # this does some important work
            raise OSError("disk gone")  # the example's "unrecoverable error", made to happen
        except OSError:
            self._health.set_module_status("YourMissionCriticalComponent", gf.ModuleHealthStatus.NOT_OK)
            raise


# --- "Configuration for your service" --------------------------------------------------------------
_MY_CONFIG_SECTION = "my_service"


class _Methods(gf.FlightServerMethods):
    def __init__(self, ctx: gf.ServerContext, opt1: Any) -> None:
        self.ctx = ctx
        self.opt1 = opt1
        self.component = YourMissionCriticalComponent(ctx.health)

    def do_action(self, context: pyarrow.flight.ServerCallContext, action: pyarrow.flight.Action) -> Any:
        _LOGGER.info("event-name", some_event_key="value_to_log")
        some_function()
        with MY_TRACER.start_as_current_span("do_some_work"):
            pass
        if action.type == "important":
            self.component.some_important_method()
        return [str(self.opt1).encode()]


@gf.flight_server_methods
def my_service(ctx: gf.ServerContext) -> gf.FlightServerMethods:
    opt1 = ctx.settings.get(f"{_MY_CONFIG_SECTION}.opt1")

    # ... create and return server methods ...
    return _Methods(ctx, opt1)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_seed_snippets_work_together() -> None:
    """Service config, structlog, a plain Counter, a ProxyTracer and the health component all work."""
    settings = {
        "my_service": {"opt1": "value"},
        "server": {
            "health_check_host": "127.0.0.1",
            "health_check_port": 0,
            "metrics_host": "127.0.0.1",
            "metrics_port": 0,
        },
    }
    with running_server(my_service, settings) as server:
        client = pyarrow.flight.FlightClient(server.location)
        assert [r.body.to_pybytes() for r in client.do_action(pyarrow.flight.Action("x", b""))] == [b"value"]
        assert _status(f"{server.health_check_url}/live") == 202
        with pytest.raises(pyarrow.flight.FlightInternalError):
            list(client.do_action(pyarrow.flight.Action("important", b"")))
        assert _status(f"{server.health_check_url}/live") == 500
        with urllib.request.urlopen(server.metrics_url or "", timeout=10) as response:
            assert "my_counter_total 2.0" in response.read().decode()
        client.close()
