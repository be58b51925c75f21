"""The server: one straight line from startup to shutdown, on a thread of its own.

``_serve`` reads as the whole life of a server: ``_startup`` starts every subsystem in order under
an ``ExitStack`` (so a failure half-way stops exactly what had started), binds the Flight listener
with the availability gate closed, runs the methods factory and opens the gate; ``_main_loop``
waits for a stop; ``_shutdown`` drains (``drain.py``), and the stack then stops every subsystem in
reverse order. ``stop()``, ``abort()`` and the signal handlers (``signals.py``) only raise flags.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import pyarrow.flight
import structlog
from opentelemetry import trace
from prometheus_client import REGISTRY
from prometheus_client.registry import CollectorRegistry

from gooddata_flight_server._derived import loggable, reachable_without_auth, url_host
from gooddata_flight_server._settings_load import read_settings, settings_from
from gooddata_flight_server._version import __version__
from gooddata_flight_server.auth.loading import check_strategy
from gooddata_flight_server.auth.middleware import TokenAuthenticator
from gooddata_flight_server.context import ServerContext
from gooddata_flight_server.exceptions import FlightMethodsModuleError
from gooddata_flight_server.health import HealthCheckServer, ServerHealthMonitor
from gooddata_flight_server.housekeeping import MemoryHousekeeping
from gooddata_flight_server.methods import FlightServerMethods, FlightServerMethodsFactory
from gooddata_flight_server.observability.exposition import MetricsServer
from gooddata_flight_server.observability.logging import configure_logging, logging_configured
from gooddata_flight_server.observability.metrics import auth_metrics, memory_metrics, rpc_metrics
from gooddata_flight_server.observability.tracing import Tracing
from gooddata_flight_server.rpc.edge import Edge, middleware
from gooddata_flight_server.rpc.gate import Gate
from gooddata_flight_server.rpc.listener import FlightListener
from gooddata_flight_server.server.drain import Drain
from gooddata_flight_server.server.signals import Signals
from gooddata_flight_server.settings import AuthenticationMethod, ServerConfig, config_warnings
from gooddata_flight_server.tasks import TaskExecutor, ThreadTaskExecutor

__all__ = ["GoodDataFlightServer", "create_server"]

log = structlog.get_logger(__name__)

_TICK_SEC = 0.1  # how often waits look at flags that signal handlers flip without notifying
_FORCED_GRACE_SEC = 3.0  # after a forced stop, how long a wait gives the server thread to finish


class Subsystem(Protocol):
    """A part of the server with a lifetime: started in order, stopped in reverse."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class _Off:
    """The null object for an optional subsystem that is not configured."""

    port = None

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class GoodDataFlightServer:
    """A Flight server whose lifecycle is owned here; create it with :func:`create_server`."""

    def __init__(
        self,
        settings: Any,
        config: ServerConfig,
        methods: FlightServerMethods | FlightServerMethodsFactory,
        config_problems: Sequence[str] = (),
        *,
        registry: CollectorRegistry | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self._settings = settings
        self._config = config
        self._methods = methods
        self._config_warnings = tuple(config_problems)
        registry = REGISTRY if registry is None else registry
        metrics_on = config.metrics_host is not None
        self._health = ServerHealthMonitor()
        self._gate = Gate()
        self._tracing = Tracing(config.otel_config, __version__, tracer_provider)
        self._rpc_metrics = rpc_metrics(registry) if metrics_on else None
        self._auth = (
            TokenAuthenticator(config, auth_metrics(registry).failures if metrics_on else None)
            if config.authentication_method is AuthenticationMethod.Token
            else None
        )
        edge = Edge(
            self._gate,
            self._auth,
            self._rpc_metrics,
            self._tracing,
            extract_context=config.otel_config.extract_context_from_headers,
        )
        factories = middleware(
            edge, with_auth_token=self._auth is not None, hold_thread_state=config.hold_thread_state
        )
        self._listener = FlightListener(config, factories)
        self._metrics_http: MetricsServer | _Off = (
            MetricsServer(config.metrics_host, config.metrics_port, registry=registry)
            if config.metrics_host is not None
            else _Off()
        )
        self._health_http: HealthCheckServer | _Off = (
            HealthCheckServer(self._health, config.health_check_host, config.health_check_port)
            if config.health_check_host
            else _Off()
        )
        memory = memory_metrics(registry)
        self._housekeeping = MemoryHousekeeping(
            config.malloc_trim_interval_sec,
            on_done=memory.malloc_trim.observe,
            on_error=memory.malloc_trim_error.inc,
        )
        self._drain = Drain(
            self._gate,
            self._listener,
            self._cancel_tasks,
            config.shutdown_timeout_sec,
            forced=self._forced,
            gate_closed=lambda: self._health.set_ready(False),
        )
        self._task_executor = ThreadTaskExecutor(
            config=config, stop_wait=self._drain.time_left, registry=registry
        )
        self._signals = Signals()
        self._location: pyarrow.flight.Location | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._started = threading.Event()
        self._stopped = threading.Event()
        self._startup_error: BaseException | None = None
        self._stop_requested = False
        self._aborted = False
        self._signals_logged = 0
        self._served = False
        self._drained = False

    # -- what the server is -----------------------------------------------------------------------

    @property
    def config(self) -> ServerConfig:
        return self._config

    @property
    def location(self) -> pyarrow.flight.Location:
        """The advertised location: known from the start when the port is configured, and once the
        listener is bound when ``listen_port`` is 0 (it then carries the real port)."""
        if self._location is not None:
            return self._location
        if self._config.advertise_port:
            return self._advertised(self._config.advertise_port)
        raise RuntimeError("the server binds a free port: no location until started (wait_for_start())")

    def _advertised(self, port: int) -> pyarrow.flight.Location:
        scheme = "grpc+tls" if self._config.use_tls else "grpc"  # as in the original package
        return pyarrow.flight.Location(f"{scheme}://{url_host(self._config.advertise_host)}:{port}")

    @property
    def health(self) -> ServerHealthMonitor:
        return self._health

    @property
    def in_flight_calls(self) -> int:
        """Calls admitted and not ended yet (a DoGet ends once its stream was sent)."""
        return self._gate.in_flight

    @property
    def task_executor(self) -> TaskExecutor:
        return self._task_executor

    @property
    def health_check_url(self) -> str | None:
        """Base URL of the /ready and /live endpoints once they listen (before the methods factory
        runs, so probes can watch the startup), None when they are off or not listening yet."""
        port = self._health_http.port
        return None if port is None else f"http://{url_host(self._config.health_check_host)}:{port}"

    @property
    def metrics_url(self) -> str | None:
        """URL of the Prometheus endpoint once it listens, None when it is off or not listening yet."""
        port = self._metrics_http.port
        return None if port is None else f"http://{url_host(self._config.metrics_host)}:{port}/metrics"

    # -- control ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start serving in the background; install SIGINT/SIGTERM handlers when on the main thread."""
        with self._lock:
            if self._thread is not None or self._stopped.is_set():
                raise RuntimeError("the server was already started; create a new one to start again")
            self._thread = threading.Thread(target=self._serve, name="gdfs-server", daemon=True)
        self._signals.install()
        self._thread.start()

    def stop(self) -> None:
        """Begin a graceful stop: drain in-flight calls, then stop everything. Does not block."""
        self._stop_requested = True
        self._wake.set()
        with self._lock:
            if self._thread is None:  # never started: there is nothing to stop
                self._stopped.set()

    def abort(self) -> None:
        """Stop at once, without waiting for in-flight calls."""
        self._aborted = True
        self.stop()

    def aborted(self) -> bool:
        """True if the server was aborted or force-stopped by a second signal."""
        return self._aborted or self._signals.count > 1

    @property
    def stopped_cleanly(self) -> bool:
        """True once stopped with every in-flight call finished (no drain deadline hit, no abort)."""
        return self._stopped.is_set() and self._drained and not self.aborted()

    def wait_for_start(self, timeout: float | None = None) -> bool:
        """Wait until the server serves; re-raise the startup failure if it failed to start.

        False on timeout, and when the server was stopped before it began to serve.
        """
        self._wait(self._started, timeout)
        if self._startup_error is not None:
            raise self._startup_error
        return self._served

    def wait_for_stop(self, timeout: float | None = None) -> bool:
        """Wait until the server has stopped; re-raise the startup failure if it failed to start.

        False on timeout, and when a forced stop (second signal) interrupted the wait before the
        server thread finished (it may be stuck in user code). On the main thread, the signal
        handlers installed by ``start()`` are restored once the server has stopped.
        """
        stopped = self._wait(self._stopped, timeout)
        if stopped:
            self._signals.restore()
        if self._startup_error is not None:
            raise self._startup_error
        return stopped

    def _stopping(self) -> bool:
        return self._stop_requested or self._signals.count > 0

    def _forced(self) -> bool:
        return self.aborted()

    def _wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Wait for the event in short steps: a forced stop while the startup is stuck in user code
        (a slow methods factory, say) must end the wait, as nothing else would."""
        deadline = None if timeout is None else time.monotonic() + timeout
        forced_at: float | None = None
        while True:
            step = _TICK_SEC if deadline is None else min(_TICK_SEC, deadline - time.monotonic())
            if step <= 0:
                return event.is_set()
            if event.wait(step):
                return True
            self._log_signals()
            if self._forced():
                # a startup stuck in user code ends the wait at once; a stop stuck in user code (an
                # on_shutdown, a task's cancel hook) after a grace period: nothing else would end it
                if not self._started.is_set():
                    return False
                forced_at = time.monotonic() if forced_at is None else forced_at
                if time.monotonic() - forced_at >= _FORCED_GRACE_SEC:
                    return False

    # -- the server thread: startup, main loop, shutdown -------------------------------------------

    def _serve(self) -> None:
        try:
            with contextlib.ExitStack() as stack:
                try:
                    self._startup(stack)
                except BaseException as e:
                    self._startup_error = e
                    # the traceback only at debug level: the CLI prints the one-line error itself
                    log.error("server_start_failed", error=f"{type(e).__name__}: {e}")
                    log.debug("server_start_failed_traceback", exc_info=e)
                    return
                if self._served:
                    self._main_loop()
                    self._shutdown()
                log.info("server_stopping")
        finally:
            self._health.set_ready(False)
            self._signals.done = True
            self._started.set()
            self._stopped.set()
            if self._startup_error is None:
                log.info("server_stopped", aborted=self.aborted())

    def _startup(self, stack: contextlib.ExitStack) -> None:
        config = self._config
        log.info("server_starting", config=loggable(config))
        for warning in self._config_warnings:
            log.warning("config_warning", problem=warning)
        if reachable_without_auth(config):
            log.warning(
                "insecure_bind",
                listen_host=config.listen_host,
                message="the server listens on a non-loopback interface without authentication; "
                "it may be reachable from the network by anyone",
            )
        self._start(stack, "tracing", self._tracing)
        self._start(stack, "metrics_http", self._metrics_http)
        self._start(stack, "health_http", self._health_http)
        self._start(stack, "task_executor", self._task_executor)
        self._start(stack, "housekeeping", self._housekeeping)
        self._start(stack, "flight", self._listener)
        if self._rpc_metrics is not None:
            state = self._rpc_metrics.state
            state.track(self._gate)
            stack.callback(state.untrack, self._gate)
            for endpoint in (self._metrics_http, self._health_http):
                if not isinstance(endpoint, _Off):
                    state.track_endpoint(endpoint)
                    stack.callback(state.untrack_endpoint, endpoint)
        port = self._listener.port
        self._location = self._advertised(config.advertise_port or port)  # 0: the port bound
        ctx = ServerContext(
            settings=self._settings,
            config=config,
            location=self._location,
            health=self._health,
            task_executor=self._task_executor,
        )
        if self._auth is not None:
            self._auth.activate(ctx)  # the strategy's create(ctx), once, before any call gets through
        methods = self._create_methods(ctx)
        self._listener.serve(methods, self._task_executor)
        # the service's own shutdown hook runs once the calls have drained and _shutdown stopped the
        # task executor, before the rest stops (pushed last onto the stack, so it unwinds first)
        stack.callback(_shut_down_service, methods)
        if self._stopping():
            log.info("server_start_cancelled", reason="a stop was requested while starting")
            return
        self._gate.open()
        self._served = True
        self._health.set_ready(True)
        # logged before wait_for_start() returns: whoever waited finds startup's last line written
        # (and may reconfigure logging, as a test capturing logs does, without racing it)
        log.info("server_started", location=self._location.uri.decode(), port=port)
        self._started.set()

    def _main_loop(self) -> None:
        while not self._stopping():
            self._wake.wait(_TICK_SEC)
        self._log_signals()

    def _log_signals(self) -> None:
        # logged by whichever thread waits next: the handlers themselves only count
        with self._lock:
            while self._signals_logged < self._signals.count:
                self._signals_logged += 1
                log.info("signal_received", count=self._signals_logged, forced=self._signals_logged > 1)

    def _shutdown(self) -> None:
        self._drained = self._drain.run().idle
        # tasks no call waits for (polled ones, ones that refused to cancel) stop before the
        # service's on_shutdown closes what they may use; the executor's stop is idempotent
        self._task_executor.stop()

    def _start(self, stack: contextlib.ExitStack, name: str, subsystem: Subsystem) -> None:
        subsystem.start()
        stack.callback(_stop_subsystem, name, subsystem)

    def _cancel_tasks(self) -> None:
        self._task_executor.stop()

    def _create_methods(self, ctx: ServerContext) -> FlightServerMethods:
        if isinstance(self._methods, FlightServerMethods):
            return self._methods
        name = getattr(self._methods, "__qualname__", repr(self._methods))
        methods = self._methods(ctx)
        if not isinstance(methods, FlightServerMethods):
            raise FlightMethodsModuleError(
                f"the methods factory {name} returned {type(methods).__name__}, "
                "expected a FlightServerMethods"
            )
        return methods


def _stop_subsystem(name: str, subsystem: Subsystem) -> None:
    try:
        subsystem.stop()
    except Exception:
        log.exception("subsystem_stop_failed", subsystem=name)


def _shut_down_service(methods: FlightServerMethods) -> None:
    try:
        methods.on_shutdown()
    except Exception:
        log.exception("service_shutdown_failed", methods=type(methods).__qualname__)


def create_server(
    methods: FlightServerMethods | FlightServerMethodsFactory,
    config_files: Sequence[str | os.PathLike[str]] = (),
    logging_config: str | os.PathLike[str] | None = None,
    dev_log: bool = False,
    *,
    config: ServerConfig | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    setup_logging: bool | None = None,
    registry: CollectorRegistry | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> GoodDataFlightServer:
    """Read the configuration (files, then environment), set up logging and build a server.

    Configuration is read afresh on every call, so a process may create many servers. Invalid
    settings raise ``ConfigError`` listing every problem at once. ``settings`` adds sections in
    code (``{"my_service": {"opt1": "x"}}``, ``{"server": {"listen_port": 0}}``), merged over the
    files; the environment still wins. ``config`` is the server's configuration built in code: then
    ``[server]`` settings from files, ``settings`` and the environment are not used (other
    sections still are, through ``ctx.settings``). ``registry`` is the Prometheus registry of the
    server's metrics (``prometheus_client.REGISTRY`` by default); ``tracer_provider`` records its
    spans instead of an exporter of its own.

    Logging is process-wide. It is configured (from ``logging_config``, or the shipped default; JSON
    lines, or console lines with ``dev_log`` as with the CLI's ``--dev-log``) when ``setup_logging``
    is True, or when it is None (the default) and either ``logging_config`` is given or the root
    logger has no handlers yet. An application that set up logging itself keeps its handlers and its
    structlog configuration (pass ``setup_logging=True`` to have the server's set up anyway);
    ``setup_logging=False`` never touches logging.
    """
    if not isinstance(methods, FlightServerMethods) and not callable(methods):
        raise TypeError(
            "methods must be a FlightServerMethods or a factory taking ServerContext, "
            f"got {type(methods).__name__}"
        )
    if config is None:
        dynaconf, config, problems = read_settings(config_files, settings)
    else:
        dynaconf, problems = settings_from(config_files, settings), tuple(config_warnings(config))
    if config.authentication_method is AuthenticationMethod.Token and config.token_verification:
        check_strategy(config.token_verification, dynaconf)  # bad settings fail here, before any bind
    if setup_logging is None:
        setup_logging = logging_config is not None or not logging_configured()
    if setup_logging:
        configure_logging(
            logging_config=logging_config,
            dev_log=dev_log,
            event_key=config.log_event_key_name,
            trace_keys=config.log_trace_keys,
            add_trace_context=config.otel_config.exporter_type is not None or tracer_provider is not None,
        )
    return GoodDataFlightServer(
        dynaconf, config, methods, problems, registry=registry, tracer_provider=tracer_provider
    )
