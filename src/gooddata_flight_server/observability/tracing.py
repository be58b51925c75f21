"""OpenTelemetry: the exporter chosen in settings, the server's tracer, a switchable global provider.

OpenTelemetry lets a process set its global tracer provider only once, and a user's
``trace.ProxyTracer`` binds to whatever provider is global when it first starts a span. Many
servers live in one process (tests do this), each with its own exporter, so the global provider set
here is a switch (kept in ``_globals``): it forwards to the SDK provider of the server that is
running, and to a no-op tracer when none is, which keeps every ``ProxyTracer`` working across
servers. A server given a tracer provider of its own uses that one and leaves the global alone.
The RPC edge (``rpc.edge``) starts one SERVER span per call with :meth:`Tracing.tracer`.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import threading
from collections.abc import Mapping
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.sdk.resources import (
    OsResourceDetector,
    OTELResourceDetector,
    ProcessResourceDetector,
    Resource,
    get_aggregated_resources,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from gooddata_flight_server import _globals
from gooddata_flight_server.settings import OtelConfig, OtelExporterType

__all__ = ["Tracing", "installed_switch", "tracing_active"]

log = structlog.get_logger(__name__)


# exporter type -> (module, class, extra that installs it)
_EXPORTERS: Mapping[OtelExporterType, tuple[str, str, str | None]] = {
    OtelExporterType.Console: ("opentelemetry.sdk.trace.export", "ConsoleSpanExporter", None),
    OtelExporterType.OtlpGrpc: (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "OTLPSpanExporter",
        "otel-exporter-otlp-grpc",
    ),
    OtelExporterType.OtlpHttp: (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "OTLPSpanExporter",
        "otel-exporter-otlp-http",
    ),
    OtelExporterType.Zipkin: ("opentelemetry.exporter.zipkin.json", "ZipkinExporter", "otel-exporter-zipkin"),
}


_SWITCH_LOCK = threading.Lock()


class _SwitchingTracer(trace.Tracer):
    """Forwards to the running server's tracer, or to a no-op tracer between servers."""

    def __init__(self, switch: _ProviderSwitch, args: tuple[Any, ...]) -> None:
        self._switch = switch
        self._args = args

    def _real(self) -> trace.Tracer:
        provider = self._switch.current
        return trace.NoOpTracer() if provider is None else provider.get_tracer(*self._args)

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._real().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._real().start_as_current_span(*args, **kwargs)


class _ProviderSwitch(trace.TracerProvider):
    """Forwards to the provider of the server started last among those still running."""

    def __init__(self) -> None:
        self._running: list[trace.TracerProvider] = []

    @property
    def current(self) -> trace.TracerProvider | None:
        running = self._running
        return running[-1] if running else None

    def push(self, provider: trace.TracerProvider) -> None:
        with _SWITCH_LOCK:
            self._running.append(provider)

    def remove(self, provider: trace.TracerProvider) -> None:
        with _SWITCH_LOCK:
            if provider in self._running:
                self._running.remove(provider)

    def clear(self) -> None:
        with _SWITCH_LOCK:
            self._running.clear()

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> trace.Tracer:
        return _SwitchingTracer(
            self, (instrumenting_module_name, instrumenting_library_version, schema_url, attributes)
        )


def tracing_active() -> bool:
    """Whether spans started now would be recorded by someone: a running server's provider, or a
    provider the application set itself."""
    provider = trace.get_tracer_provider()
    switch = _globals.tracer_switch
    if isinstance(switch, _ProviderSwitch) and provider is switch:
        return switch.current is not None
    return not isinstance(provider, trace.ProxyTracerProvider)


def installed_switch() -> _ProviderSwitch | None:
    """Make the switch the global provider once per process; None if someone else set one first."""
    with _SWITCH_LOCK:
        current = trace.get_tracer_provider()
        switch = _globals.tracer_switch
        if isinstance(switch, _ProviderSwitch) and current is switch:
            return switch
        if isinstance(current, trace.ProxyTracerProvider):
            created = _globals.tracer_switch = _ProviderSwitch()
            trace.set_tracer_provider(created)
            return created
        return None


def _create_exporter(exporter_type: OtelExporterType) -> Any:
    module_name, class_name, extra = _EXPORTERS[exporter_type]
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise RuntimeError(
            f"otel_exporter_type '{exporter_type.value}' needs its exporter package: "
            f"pip install 'gooddata-flight-server[{extra}]' ({e})"
        ) from e
    if exporter_type is OtelExporterType.Console:
        # the stdout of now, not the one of when the SDK was imported (they differ under capture)
        return getattr(module, class_name)(out=sys.stdout)
    return getattr(module, class_name)()


def _resource(config: OtelConfig, version: str) -> Any:
    attributes: dict[str, Any] = {"service.name": config.service_name or "gooddata-flight-server"}
    attributes["service.version"] = version
    if config.service_namespace:
        attributes["service.namespace"] = config.service_namespace
    attributes["service.instance.id"] = config.service_instance_id or f"{platform.node()}-{os.getpid()}"
    detected = get_aggregated_resources(
        [OTELResourceDetector(), ProcessResourceDetector(), OsResourceDetector()]
    )
    # settings win over what the environment (OTEL_RESOURCE_ATTRIBUTES) says
    return detected.merge(Resource.create(attributes))


class Tracing:
    """The tracing subsystem: an SDK provider with the configured exporter while the server runs.

    Without an exporter it is a null object: no provider, every tracer no-op.
    """

    def __init__(
        self, config: OtelConfig, version: str, provider: trace.TracerProvider | None = None
    ) -> None:
        """``provider``: a tracer provider of the caller's to record the server's spans with (no
        exporter is created then, and the global provider is left alone)."""
        self._config = config
        self._version = version
        self._given = provider
        self._provider: Any = None

    @property
    def enabled(self) -> bool:
        return self._given is not None or self._config.exporter_type is not None

    def tracer(self, name: str) -> trace.Tracer:
        """The server's own tracer: the SDK one while started, else no-op."""
        return (
            trace.NoOpTracer() if self._provider is None else self._provider.get_tracer(name, self._version)
        )

    def start(self) -> None:
        if self._given is not None:
            self._provider = self._given
            return
        if self._config.exporter_type is None:
            return
        exporter = _create_exporter(self._config.exporter_type)
        provider = TracerProvider(resource=_resource(self._config, self._version), shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        self._provider = provider
        switch = installed_switch()
        if switch is None:
            log.warning(
                "tracer_provider_already_set",
                message="a global tracer provider was set before the server started; "
                "the server's spans are exported, ProxyTracers in user code keep the other provider",
            )
        else:
            switch.push(provider)
        log.info("tracing_started", exporter=self._config.exporter_type.value)

    def stop(self) -> None:
        provider, self._provider = self._provider, None
        if provider is None or provider is self._given:
            return  # a provider given to the server is its owner's to flush and shut down
        if _globals.tracer_switch is not None:
            _globals.tracer_switch.remove(provider)
        provider.force_flush()
        provider.shutdown()
