"""The Flight listener subsystem: binds the pyarrow server and drains it on shutdown.

pyarrow's ``FlightServerBase.serve()`` installs its own signal handlers (apache/arrow#11932), so it
is never called; the server serves from construction on. ``shutdown()`` blocks until in-flight
calls finish and must not run on an RPC thread, so it runs on a thread of its own and the owner is
told when it is done; the owner decides how long to wait for it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping

import pyarrow.flight
import structlog

from gooddata_flight_server.methods import FlightServerMethods
from gooddata_flight_server.rpc.service import FlightService
from gooddata_flight_server.settings import ServerConfig
from gooddata_flight_server.tasks import TaskExecutor

__all__ = ["FlightListener", "listen_uri"]

log = structlog.get_logger(__name__)

_SETTLE_SEC = 0.5


def _host_for_uri(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def listen_uri(config: ServerConfig, port: int | None = None) -> str:
    scheme = "grpc+tls" if config.use_tls else "grpc"
    return f"{scheme}://{_host_for_uri(config.listen_host)}:{config.listen_port if port is None else port}"


def _bind_problem(config: ServerConfig, error: Exception) -> str:
    """pyarrow only says "Server did not start properly"; a plain bind usually says why."""
    try:
        infos = socket.getaddrinfo(config.listen_host, config.listen_port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.bind(address)
    except OSError as bind_error:
        return bind_error.strerror or str(bind_error)
    if config.use_tls:
        return "the TLS certificate or private key was refused (does the key belong to the certificate?)"
    return str(error)


class FlightListener:
    """A lifecycle subsystem: binds in ``start()``, serves the methods given to ``serve()``, shuts
    down in ``begin_drain()`` (on a thread of its own) and settles in ``stop()``."""

    def __init__(
        self, config: ServerConfig, middleware: Mapping[str, pyarrow.flight.ServerMiddlewareFactory]
    ):
        self._config = config
        self._middleware = middleware
        self._service: FlightService | None = None
        self._drained = threading.Event()
        self._shutdown_thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._service is not None, "listener not started"
        return int(self._service.port)

    def start(self) -> None:
        config = self._config
        tls = [config.tls_cert_and_key] if config.use_tls and config.tls_cert_and_key else None
        try:
            self._service = FlightService(
                listen_uri(config),
                self._middleware,
                tls_certificates=tls,
                # the root certificate is read only when both use_tls and use_mtls are on
                verify_client=config.tls_root_cert is not None,
                root_certificates=config.tls_root_cert,
            )
        except Exception as e:
            raise OSError(
                f"cannot bind the Flight server to {listen_uri(config)}: {_bind_problem(config, e)}"
            ) from e
        log.info(
            "flight_listening",
            uri=listen_uri(config, self.port),
            tls=config.use_tls,
            mtls=config.tls_root_cert is not None,
        )

    def serve(self, methods: FlightServerMethods, task_executor: TaskExecutor | None = None) -> None:
        """Hand calls to ``methods``; with ``task_executor`` the server answers the standard
        CancelFlightInfo and RenewFlightEndpoint actions for its tasks (``rpc.standard_actions``)."""
        assert self._service is not None, "listener not started"
        self._service.task_executor = task_executor
        self._service.methods = methods

    def begin_drain(self) -> None:
        """Stop accepting calls and wait for in-flight ones on a separate thread (``shutdown()``
        blocks until they end and must not run on an RPC thread); idempotent."""
        if self._shutdown_thread is not None:
            return
        if self._service is None:
            self._drained.set()
            return
        service = self._service

        def _shutdown() -> None:
            try:
                service.shutdown()
            except Exception:
                log.exception("flight_shutdown_failed")
            finally:
                self._drained.set()

        self._shutdown_thread = threading.Thread(target=_shutdown, name="gdfs-flight-shutdown", daemon=True)
        self._shutdown_thread.start()

    @property
    def drained(self) -> bool:
        return self._drained.is_set()

    def wait_drained(self, timeout: float) -> bool:
        return self._drained.wait(max(0.0, timeout))

    def stop(self) -> None:
        if self._service is None:
            return
        if self._shutdown_thread is None:
            # stopped without a drain (startup failed half-way): nothing is in flight yet
            self.begin_drain()
            self._drained.wait()
        if not self._drained.wait(_SETTLE_SEC):  # a forced stop with nothing in flight settles at once
            log.warning(
                "flight_calls_abandoned", reason="in-flight calls did not finish before the drain deadline"
            )
        self._service = None
