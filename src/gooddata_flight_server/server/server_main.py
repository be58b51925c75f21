"""The server: the ordered start and stop of every subsystem, and the signals that end it.

Startup is a straight line on the server's own thread: subsystems start in order under an
``ExitStack`` (so a failure half-way stops exactly what had started), the Flight listener binds
with the availability gate closed, the methods factory runs, the gate opens. Shutdown is the same
line backwards after a drain with a deadline. Signal handlers and ``stop()`` only post a byte to a
wake-up pipe; the server thread does the work.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any, Protocol

import pyarrow.flight
import structlog

from gooddata_flight_server._derived import loggable, reachable_without_auth, url_host
from gooddata_flight_server._settings_load import read_settings, settings_from
from gooddata_flight_server._version import __version__
from gooddata_flight_server._wakeup import DRAINED, FORCE, IDLE, STOP, Wakeup
from gooddata_flight_server.auth.middleware import AUTH_TOKEN_KEY, TokenAuthMiddlewareFactory
from gooddata_flight_server.auth.strategy import check_strategy
from gooddata_flight_server.context import ServerContext
from gooddata_flight_server.exceptions import FlightMethodsModuleError
from gooddata_flight_server.health import HealthCheckServer, ServerHealthMonitor
from gooddata_flight_server.housekeeping import MemoryHousekeeping
from gooddata_flight_server.methods import FlightServerMethods, FlightServerMethodsFactory
from gooddata_flight_server.observability.exposition import MetricsServer
from gooddata_flight_server.observability.logging import configure_logging
from gooddata_flight_server.observability.metrics import memory_metrics, rpc_metrics
from gooddata_flight_server.observability.tracing import (
    SPAN_MIDDLEWARE_KEY,
    Tracing,
    TracingMiddlewareFactory,
)
from gooddata_flight_server.rpc.listener import FlightListener
from gooddata_flight_server.rpc.middleware import (
    CALL_FINALIZER_KEY,
    CALL_INFO_KEY,
    Availability,
    AvailabilityGate,
    CallFinalizerFactory,
    CallInfoFactory,
    CountingRejections,
    InFlightCalls,
)
from gooddata_flight_server.settings import AuthenticationMethod, ServerConfig, config_warnings
from gooddata_flight_server.tasks import TaskExecutor, ThreadTaskExecutor

__all__ = ["GoodDataFlightServer", "create_server"]

log = structlog.get_logger(__name__)


_TASK_GRACE_SEC = 5.0  # part of the drain deadline left to calls whose tasks were cancelled
_LINGER_SEC = 0.2  # how long refusals go on after the drain, while clients still call
_SIGNAL_CHECK_SEC = 0.2  # how often a main thread waiting for the server looks for a forced stop
_GATE_KEY = "_gdfs_gate"


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
    ) -> None:
        self._methods = methods
        self._settings = settings
        self._config = config
        self._config_warnings = tuple(config_problems)
        self._health = ServerHealthMonitor()
        self._gate = AvailabilityGate()
        self._in_flight = InFlightCalls()
        self._tracing = Tracing(config.otel_config, __version__)
        self._metrics_http: MetricsServer | _Off = (
            MetricsServer(config.metrics_host, config.metrics_port) if config.metrics_host else _Off()
        )
        self._health_http: HealthCheckServer | _Off = (
            HealthCheckServer(self._health, config.health_check_host, config.health_check_port)
            if config.health_check_host
            else _Off()
        )
        memory = memory_metrics()
        self._housekeeping = MemoryHousekeeping(
            config.malloc_trim_interval_sec,
            on_done=memory.malloc_trim.observe,
            on_error=memory.malloc_trim_error.inc,
        )
        # Order matters. pyarrow does not end the calls of middleware that started before a later
        # one rejected the call, so whatever must see every call end comes after everything that
        # may reject: the gate first, then authentication, then tracing, call info and the
        # counting finalizer. Calls the gate or authentication reject are counted where they are
        # rejected. Per-call metrics cost a few microseconds a call: recorded only when served.
        self._rpc_metrics = rpc_metrics() if config.metrics_host else None
        counted = self._rpc_metrics
        middleware: dict[str, pyarrow.flight.ServerMiddlewareFactory] = {
            _GATE_KEY: self._gate if counted is None else CountingRejections(self._gate, counted)
        }
        self._auth: TokenAuthMiddlewareFactory | None = None
        if config.authentication_method is AuthenticationMethod.Token:
            self._auth = TokenAuthMiddlewareFactory(config)
            middleware[AUTH_TOKEN_KEY] = (
                self._auth if counted is None else CountingRejections(self._auth, counted)
            )
        if self._tracing.enabled:
            middleware[SPAN_MIDDLEWARE_KEY] = TracingMiddlewareFactory(
                self._tracing, config.otel_config.extract_context
            )
        middleware[CALL_INFO_KEY] = CallInfoFactory()
        middleware[CALL_FINALIZER_KEY] = CallFinalizerFactory(self._in_flight, counted)
        self._listener = FlightListener(
            config,
            middleware,
            count_data=self._rpc_metrics is not None,
            traced=self._tracing.enabled,
        )
        self._drain_deadline: float | None = None
        self._task_executor = ThreadTaskExecutor(config=config, stop_wait=self._drain_time_left)
        self._location: pyarrow.flight.Location | None = None
        self._wakeup: Wakeup | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stopped = threading.Event()
        self._startup_error: BaseException | None = None
        self._aborted = False
        self._stop_requested = False
        self._served = False
        self._signals: dict[int, Any] = {}
        self._signal_count = 0
        self._signals_logged = 0

    # -- public API -------------------------------------------------------------------------------

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
        raise RuntimeError(
            "the server binds a free port: it has no location until started (wait_for_start())"
        )

    def _advertised(self, port: int) -> pyarrow.flight.Location:
        scheme = "grpc+tls" if self._config.use_tls else "grpc"  # as in the original package
        return pyarrow.flight.Location(f"{scheme}://{url_host(self._config.advertise_host)}:{port}")

    @property
    def health(self) -> ServerHealthMonitor:
        return self._health

    @property
    def health_check_url(self) -> str | None:
        """Base URL of the /ready and /live endpoints once started, None when they are off."""
        port = self._health_http.port if self._started.is_set() else None
        return None if port is None else f"http://{url_host(self._config.health_check_host)}:{port}"

    @property
    def metrics_url(self) -> str | None:
        """URL of the Prometheus endpoint once started, None when it is off."""
        port = self._metrics_http.port if self._started.is_set() else None
        return None if port is None else f"http://{url_host(self._config.metrics_host)}:{port}/metrics"

    @property
    def task_executor(self) -> TaskExecutor:
        return self._task_executor

    def start(self) -> None:
        """Start serving in the background; install SIGINT/SIGTERM handlers when on the main thread."""
        with self._lock:
            if self._thread is not None or self._stopped.is_set():
                raise RuntimeError("the server was already started; create a new one to start again")
            self._wakeup = Wakeup()
            self._thread = threading.Thread(target=self._run, name="gdfs-server", daemon=True)
        if threading.current_thread() is threading.main_thread():
            self._install_signal_handlers()
        self._thread.start()

    def stop(self) -> None:
        """Begin a graceful stop: drain in-flight calls, then stop everything. Does not block."""
        self._request(STOP)

    def abort(self) -> None:
        """Stop at once, without waiting for in-flight calls."""
        self._aborted = True
        self._request(FORCE)

    @property
    def stopped_cleanly(self) -> bool:
        """True once stopped with every in-flight call finished (no drain deadline hit, no abort)."""
        return self._stopped.is_set() and self._listener.drained and not self._aborted

    def aborted(self) -> bool:
        """True if the server was aborted or force-stopped by a second signal."""
        return self._aborted

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

        False on timeout, and when a forced stop (second signal) interrupted the wait on the main
        thread before the server thread finished.
        """
        stopped = self._wait(self._stopped, timeout)
        if stopped and threading.current_thread() is threading.main_thread():
            self._restore_signal_handlers()
        if self._startup_error is not None:
            raise self._startup_error
        return stopped

    # -- signals ----------------------------------------------------------------------------------

    def _request(self, what: bytes) -> None:
        with self._lock:
            if self._wakeup is None:  # never started: there is nothing to stop
                self._stopped.set()
                return
        self._stop_requested = True
        self._wakeup.post(what)

    def _install_signal_handlers(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._signals[signum] = signal.signal(signum, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        signals, self._signals = self._signals, {}
        for signum, previous in signals.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopped.is_set() or self._wakeup is None:
            # stopped, but nobody restored the handlers (wait_for_stop ran off the main thread):
            # restore them now and deliver the signal to whoever had it before
            self._restore_signal_handlers()
            signal.raise_signal(signum)
            return
        self._signal_count += 1
        if self._signal_count > 1:
            self._aborted = True
        self._stop_requested = True
        self._wakeup.post(FORCE if self._signal_count > 1 else STOP)

    def _wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Wait for the event; on the main thread with our handlers, a forced stop during startup ends it.

        Signal handlers run on the main thread between short waits, so a second signal is seen even
        while the server thread is stuck in startup (say, in a slow methods factory) and cannot stop.
        """
        if not self._signals or threading.current_thread() is not threading.main_thread():
            return event.wait(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._signal_count != self._signals_logged:  # logged here: handlers only flip flags
                self._signals_logged = self._signal_count
                log.info("signal_received", count=self._signal_count, forced=self._aborted)
            step = (
                _SIGNAL_CHECK_SEC if deadline is None else min(_SIGNAL_CHECK_SEC, deadline - time.monotonic())
            )
            if step <= 0:
                return event.is_set()
            if event.wait(step):
                return True
            if self._aborted and not self._started.is_set():
                return False  # forced while startup is stuck in user code: nothing will end the wait

    # -- the server thread ------------------------------------------------------------------------

    def _run(self) -> None:
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
                self._serve_until_stopped()
                log.info("server_stopping")
        finally:
            self._health.set_ready(False)
            self._started.set()
            if self._wakeup is not None:
                self._wakeup.close()
            self._stopped.set()
            if self._startup_error is None:
                log.info("server_stopped", aborted=self._aborted)

    def _start(self, stack: contextlib.ExitStack, name: str, subsystem: Subsystem) -> None:
        subsystem.start()
        stack.callback(self._stop_subsystem, name, subsystem)

    @staticmethod
    def _stop_subsystem(name: str, subsystem: Subsystem) -> None:
        try:
            subsystem.stop()
        except Exception:
            log.exception("subsystem_stop_failed", subsystem=name)

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
            self._rpc_metrics.state.track(self._in_flight)
            stack.callback(self._rpc_metrics.state.untrack, self._in_flight)
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
        self._listener.serve(methods)
        # the service's own shutdown hook runs once the calls have drained, before the task
        # executor and the rest stop (pushed last onto the stack, so it unwinds first)
        stack.callback(_shut_down_service, methods)
        if self._stop_requested:
            log.info("server_start_cancelled", reason="a stop was requested while starting")
            return
        self._gate.state = Availability.SERVING
        self._served = True
        self._health.set_ready(True)
        self._started.set()
        log.info("server_started", location=self._location.uri.decode(), port=port)

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

    def _serve_until_stopped(self) -> None:
        wakeup = self._wakeup
        assert wakeup is not None, "started servers have a wake-up pipe"
        what = b""
        while what not in (STOP, FORCE):
            what = wakeup.wait(None)
        timeout = self._config.shutdown_timeout_sec
        in_flight = self._in_flight
        log.info("server_draining", forced=what == FORCE, in_flight=in_flight.count, timeout_sec=timeout)
        self._gate.state = Availability.SHUTTING_DOWN  # first: once not ready, no call gets through
        self._health.set_ready(False)
        now = time.monotonic()
        deadline = now + timeout
        self._drain_deadline = deadline if what != FORCE else now
        if what != FORCE:
            in_flight.notify_when_idle(lambda: wakeup.post(IDLE))
            # calls still running near the deadline may be waiting for tasks: cancel the tasks
            # while there is time left for those calls to answer
            what = wakeup.wait_for((IDLE, FORCE), deadline - min(_TASK_GRACE_SEC, timeout / 4))
            if what == b"":
                log.info("drain_cancelling_tasks", in_flight=in_flight.count)
                self._task_executor.stop()
                what = wakeup.wait_for((IDLE, FORCE), deadline)
        if what == IDLE and self._gate.refused_while_draining:
            # clients are still calling: let them hear SHUTTING_DOWN a little longer, because once
            # gRPC shuts down it cancels what arrives (CANCELLED is not a status clients retry on)
            what = wakeup.wait_for((FORCE,), min(deadline, time.monotonic() + _LINGER_SEC)) or IDLE
        # with nothing in flight this is quick; past the deadline it waits for stuck calls in the background
        self._listener.begin_drain(lambda: wakeup.post(DRAINED))
        if what == IDLE:
            wakeup.wait_for((DRAINED, FORCE), deadline)
        elif what == b"":
            log.warning("drain_deadline_exceeded", timeout_sec=timeout, in_flight=in_flight.count)

    def _drain_time_left(self) -> float:
        """Seconds left of the drain deadline: what stopping subsystems may still wait for their work."""
        if self._drain_deadline is None or self._aborted:
            return 0.0
        return max(0.0, self._drain_deadline - time.monotonic())


def _shut_down_service(methods: FlightServerMethods) -> None:
    try:
        methods.on_shutdown()
    except Exception:
        log.exception("service_shutdown_failed", methods=type(methods).__qualname__)


def create_server(
    methods: FlightServerMethods | FlightServerMethodsFactory,
    config_files: Sequence[str | os.PathLike[str]] = (),
    logging_config: str | os.PathLike[str] | None = None,
    dev_log: bool = True,
    *,
    config: ServerConfig | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    setup_logging: bool = True,
) -> GoodDataFlightServer:
    """Read the configuration (files, then environment), set up logging and build a server.

    Configuration is read afresh on every call, so a process may create many servers. Invalid
    settings raise ``ConfigError`` listing every problem at once. ``settings`` adds sections in
    code (``{"my_service": {"opt1": "x"}}``, ``{"server": {"listen_port": 0}}``), merged over the
    files; the environment still wins. ``config`` is the server's configuration built in code: then
    ``[server]`` settings from files, ``settings`` and the environment are not used (other
    sections still are, through ``ctx.settings``).

    Logging is process-wide: with ``setup_logging=False`` the logging and structlog setup already
    in place is left alone (tests capturing logs with ``caplog`` or ``structlog.testing`` want that).
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
    if not setup_logging:
        return GoodDataFlightServer(dynaconf, config, methods, problems)
    configure_logging(
        logging_config=logging_config,
        dev_log=dev_log,
        event_key=config.log_event_key_name,
        trace_keys=config.log_trace_keys,
        add_trace_context=config.otel_config.exporter_type is not None,
    )
    return GoodDataFlightServer(dynaconf, config, methods, problems)
