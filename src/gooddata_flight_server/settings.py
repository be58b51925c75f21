"""The server's configuration: frozen objects with one place per setting.

Every ``[server]`` setting is a field of :class:`ServerConfig` (OpenTelemetry's of
:class:`OtelConfig`) declared with :func:`_setting`: its default, its name in the ``[server]``
section (and so its ``GOODDATA_FLIGHT_SERVER__*`` environment variable), its kind (how values are
read and checked) and its documentation. ``sample-config.toml`` is generated from these
declarations (``_sample_config.py``) and a test keeps the two equal.

The objects validate themselves when they are built, whether from files and the environment
(``load_settings``) or directly in Python::

    config = gf.ServerConfig(listen_port=0, task_threads=4)

Any accepted spelling is normalised (``"17001"`` -> 17001, ``"yes"`` -> True, ``"token"`` ->
``AuthenticationMethod.Token``); every invalid value is reported at once in a :class:`ConfigError`
naming the setting and its environment variable. Field names follow the original package
(``use_mutual_tls``, ``extract_context_from_headers``); ``use_mtls`` and ``extract_context`` are
read-only aliases.
"""

from __future__ import annotations

import dataclasses
import enum
import socket
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from gooddata_flight_server._settings_parse import (
    BadValue,
    Flag,
    FrozenMap,
    Integer,
    Kind,
    NameMap,
    Number,
    OneOf,
    Pem,
    Text,
    env_var_name,
)

__all__ = [
    "AuthenticationMethod",
    "ConfigError",
    "OtelConfig",
    "OtelExporterType",
    "ServerConfig",
    "SettingSpec",
    "config_warnings",
    "setting_specs",
]

SERVER_SECTION = "server"
TRACE_KEYS = ("trace_id", "span_id", "parent_span_id")
"""Log keys that ``log_trace_keys`` may rename."""
DEFAULT_TOKEN_VERIFICATION = "EnumeratedTokenVerification"

_MASK = b"<masked>"
_MAX_PORT = 65535


class AuthenticationMethod(enum.Enum):
    NoAuth = "none"
    Token = "token"


class OtelExporterType(enum.Enum):
    Zipkin = "zipkin"
    OtlpHttp = "otlp-http"
    OtlpGrpc = "otlp-grpc"
    Console = "console"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` holds every problem found, one line each."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        count = len(self.problems)
        header = f"invalid configuration ({count} problem{'s' if count != 1 else ''}):"
        return "\n".join([header, *(f"  - {problem}" for problem in self.problems)])


@dataclasses.dataclass(frozen=True)
class SettingSpec:
    """What one field of a config object is, as a setting.

    ``keys`` are its names in ``[server]`` (two for the TLS certificate and key pair); ``docs`` one
    paragraph per key; ``default_doc`` describes a default that is not a plain value; ``example``
    the value shown in sample-config.toml when it should differ from the default.
    """

    keys: tuple[str, ...]
    kind: Kind[Any]
    group: str
    docs: tuple[str, ...]
    default_doc: str | None = None
    examples: tuple[str | None, ...] = ()
    only_when: tuple[str, ...] = ()
    """Boolean fields that must all be true for this setting to be read at all (else it is None)."""

    @property
    def key(self) -> str:
        return self.keys[0]

    def problem(self, message: str, key: str | None = None) -> str:
        name = key or self.key
        return f"{SERVER_SECTION}.{name}: {message} (env {env_var_name(SERVER_SECTION, name)})"


def _setting(
    default: Any,
    key: str | tuple[str, ...],
    kind: Kind[Any],
    group: str,
    doc: str | tuple[str, ...],
    *,
    default_doc: str | None = None,
    example: str | tuple[str | None, ...] | None = None,
) -> Any:
    keys = (key,) if isinstance(key, str) else key
    docs = (doc,) if isinstance(doc, str) else doc
    examples = example if isinstance(example, tuple) else (example,)
    spec = SettingSpec(keys, kind, group, docs, default_doc, examples)
    return dataclasses.field(default=default, metadata={"setting": spec})


def setting_specs(cls: type[Any]) -> Iterator[tuple[dataclasses.Field[Any], SettingSpec]]:
    """The fields of a config class that are settings, with their specs, in declaration order."""
    for field in dataclasses.fields(cls):
        spec = field.metadata.get("setting")
        if spec is not None:
            yield field, spec


def _validate(obj: Any) -> list[str]:
    """Coerce every setting field of a frozen config object in place; the problems found."""
    problems: list[str] = []
    for field, spec in setting_specs(type(obj)):
        if not all(getattr(obj, gate) is True for gate in spec.only_when):
            object.__setattr__(obj, field.name, None)  # not read: a stale value must not fail the config
            continue
        try:
            value = spec.kind.coerce(getattr(obj, field.name))
        except BadValue as e:
            problems.append(spec.problem(str(e), spec.keys[e.part]))
            value = field.default
        object.__setattr__(obj, field.name, value)
    return problems


_OTEL = "OpenTelemetry tracing"


@dataclasses.dataclass(frozen=True)
class OtelConfig:
    """OpenTelemetry settings; ``exporter_type`` None means tracing is a no-op."""

    exporter_type: OtelExporterType | None = _setting(
        None,
        "otel_exporter_type",
        OneOf(OtelExporterType, none_word="none"),
        _OTEL,
        'Span exporter: "none", "zipkin", "otlp-http", "otlp-grpc" or "console". The exporters come with '
        "the package extras otel-exporter-zipkin, otel-exporter-otlp-http and otel-exporter-otlp-grpc.",
        default_doc='"none" (tracing is a no-op)',
        example='"otlp-grpc"',
    )
    service_name: str | None = _setting(
        None,
        "otel_service_name",
        Text(),
        _OTEL,
        "Resource attribute service.name; without it an exporter reports the service as "
        '"gooddata-flight-server".',
        example='"my-data-service"',
    )
    service_namespace: str | None = _setting(
        None,
        "otel_service_namespace",
        Text(),
        _OTEL,
        "Resource attribute service.namespace.",
        example='"analytics"',
    )
    service_instance_id: str | None = _setting(
        None,
        "otel_service_instance_id",
        Text(),
        _OTEL,
        "Resource attribute service.instance.id.",
        default_doc="not set (the host name and process id)",
        example='"flight-1"',
    )
    extract_context_from_headers: bool = _setting(
        False,
        "otel_extract_context",
        Flag(),
        _OTEL,
        "Continue the caller's trace when a call carries W3C trace context headers (traceparent).",
    )

    def __post_init__(self) -> None:
        problems = _validate(self)
        if problems:
            raise ConfigError(problems)

    @property
    def extract_context(self) -> bool:
        """Alias of ``extract_context_from_headers``."""
        return self.extract_context_from_headers


_NET = "Network"
_TLS = "TLS"
_AUTH = "Authentication"
_TASKS = "Long-running tasks"
_OPS = "Health checks and metrics"
_HOUSE = "Housekeeping and shutdown"
_LOG = "Logging"

_PEM_PAIR = Pem()


class _TlsPair(Kind[Any]):
    """The certificate and private key, each inline or ``@path``; both or neither."""

    def coerce(self, value: Any) -> tuple[bytes, bytes] | None:
        if value is None:
            return None
        if not isinstance(value, tuple) or len(value) != 2:
            raise BadValue(f"expected a (certificate, private key) pair, got a {type(value).__name__}")
        parts: list[bytes | None] = []
        for index, part in enumerate(value):
            try:
                parts.append(_PEM_PAIR.coerce(part))
            except BadValue as e:
                raise BadValue(str(e), part=index) from None
        cert, key = parts
        if cert is None and key is None:
            return None
        if cert is None or key is None:
            raise BadValue("required when use_tls is true", part=0 if cert is None else 1)
        return cert, key


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Validated ``[server]`` settings; see sample-config.toml for what each one means.

    TLS material is left out of ``repr`` so that logging the config by accident cannot leak a
    private key; use ``without_tls()`` before dumping it field by field (e.g. ``dataclasses.asdict``).
    """

    listen_host: str = _setting(
        "127.0.0.1",
        "listen_host",
        Text(optional=False),
        _NET,
        "Interface the Flight RPC server binds to. Binding to anything but loopback without "
        "authentication makes the server reachable from the network by anyone; the server warns about it.",
    )
    listen_port: int = _setting(
        17001,
        "listen_port",
        Integer(0, _MAX_PORT),
        _NET,
        "Port the Flight RPC server binds to: 1..65535, or 0 to let the operating system pick a free port.",
    )
    advertise_host: str = _setting(
        "",
        "advertise_host",
        Text(),
        _NET,
        "Host name put into the location the server advertises to clients (ctx.location, FlightInfo "
        "endpoints). Set it when clients reach the server under another name (container, load balancer).",
        default_doc="this machine's fully qualified domain name, determined when the configuration is loaded",
        example='"flight.example.com"',
    )
    advertise_port: int = _setting(
        0,
        "advertise_port",
        Integer(0, _MAX_PORT),
        _NET,
        "Port put into the advertised location (1..65535).",
        default_doc="listen_port (the port the server actually bound when listen_port = 0)",
        example="443",
    )
    use_tls: bool = _setting(
        False, "use_tls", Flag(), _TLS, "Serve grpc+tls; requires tls_certificate and tls_private_key."
    )
    use_mutual_tls: bool = _setting(
        False,
        "use_mtls",
        Flag(),
        _TLS,
        "Require clients to present a certificate signed by tls_root_certificate (mutual TLS); "
        "needs tls_root_certificate, and has no effect unless use_tls is on.",
    )
    tls_cert_and_key: tuple[bytes, bytes] | None = dataclasses.field(
        default=None,
        repr=False,
        metadata={
            "setting": SettingSpec(
                ("tls_certificate", "tls_private_key"),
                _TlsPair(),
                _TLS,
                ("The server's certificate (chain).", "The server certificate's private key."),
                examples=(
                    '"@/etc/gooddata-flight-server/server.crt"',
                    '"@/etc/gooddata-flight-server/server.key"',
                ),
                only_when=("use_tls",),
            )
        },
    )
    tls_root_cert: bytes | None = dataclasses.field(
        default=None,
        repr=False,
        metadata={
            "setting": SettingSpec(
                ("tls_root_certificate",),
                Pem(),
                _TLS,
                ("The CA certificate(s) that client certificates must be signed by when use_mtls is on.",),
                examples=('"@/etc/gooddata-flight-server/clients-ca.crt"',),
                only_when=("use_tls", "use_mutual_tls"),
            )
        },
    )
    authentication_method: AuthenticationMethod = _setting(
        AuthenticationMethod.NoAuth,
        "authentication_method",
        OneOf(AuthenticationMethod),
        _AUTH,
        '"none" or "token". With "token", every call must carry a token that the strategy named by '
        "token_verification accepts.",
        example='"token"',
    )
    token_header_name: str | None = _setting(
        None,
        "token_header_name",
        Text(),
        _AUTH,
        "Header carrying the token. Not set: the standard `Authorization: Bearer <token>`. Set: the token "
        "is the whole value of this header.",
        example='"x-api-key"',
    )
    token_verification: str | None = _setting(
        None,
        "token_verification",
        Text(),
        _AUTH,
        'Token verification strategy: the name of a built-in one, or a module ("my_pkg.auth") holding '
        'exactly one strategy class, or "my_pkg.auth:MyStrategy".',
        default_doc=f'"{DEFAULT_TOKEN_VERIFICATION}" when authentication_method = "token", otherwise not set',
        example=f'"{DEFAULT_TOKEN_VERIFICATION}"',
    )
    task_threads: int = _setting(
        32,
        "task_threads",
        Integer(1),
        _TASKS,
        "Worker threads of the task executor: how many tasks run at the same time (at least 1).",
    )
    task_close_threads: int = _setting(
        2,
        "task_close_threads",
        Integer(1),
        _TASKS,
        "Threads that close task results once they expire (at least 1).",
    )
    task_result_ttl_sec: float = _setting(
        60.0,
        "task_result_ttl_sec",
        Number(0, inclusive=False),
        _TASKS,
        "Seconds a finished task's result is kept for clients to pick up (more than 0).",
    )
    metrics_host: str | None = _setting(
        None,
        "metrics_host",
        Text(),
        _OPS,
        "Interface of the Prometheus metrics endpoint; the endpoint is off unless this is set.",
        default_doc="not set (off)",
        example='"0.0.0.0"',
    )
    metrics_port: int = _setting(
        17101,
        "metrics_port",
        Integer(0, _MAX_PORT),
        _OPS,
        "Port of the Prometheus metrics endpoint (0..65535, 0 = any free port).",
    )
    health_check_host: str | None = _setting(
        None,
        "health_check_host",
        Text(),
        _OPS,
        "Interface of the HTTP health endpoints /ready and /live; they are off unless this is set.",
        default_doc="not set (off)",
        example='"0.0.0.0"',
    )
    health_check_port: int = _setting(
        8877,
        "health_check_port",
        Integer(0, _MAX_PORT),
        _OPS,
        "Port of the HTTP health endpoints (0..65535, 0 = any free port).",
    )
    malloc_trim_interval_sec: float = _setting(
        30.0,
        "malloc_trim_interval_sec",
        Number(0, inclusive=False),
        _HOUSE,
        "Seconds between returns of unused memory to the operating system (glibc malloc_trim and "
        "Arrow's memory pool); more than 0.",
    )
    log_event_key_name: str = _setting(
        "event",
        "log_event_key_name",
        Text(optional=False),
        _LOG,
        "Key under which the event name appears in JSON log lines.",
    )
    log_trace_keys: Mapping[str, str] = _setting(
        FrozenMap({}),
        "log_trace_keys",
        NameMap(TRACE_KEYS),
        _LOG,
        "Renames the trace keys added to log lines when tracing is on. Allowed keys: trace_id, span_id, "
        "parent_span_id; values are the names to use instead.",
        default_doc="{} (keep the names)",
        example='{ trace_id = "traceId", span_id = "spanId", parent_span_id = "parentSpanId" }',
    )
    otel_config: OtelConfig = dataclasses.field(default_factory=OtelConfig)
    task_queue_size: int = _setting(
        0,
        "task_queue_size",
        Integer(0),
        _TASKS,
        "Most tasks that may wait for a worker; when the queue is full, new tasks are refused with a "
        "BACKPRESSURE error the client may retry. 0 means unbounded.",
    )
    task_result_max_count: int = _setting(
        100_000,
        "task_result_max_count",
        Integer(0),
        _TASKS,
        "Most finished task results kept at once for clients to fetch (a result stays until it expires, "
        "also after it was read: at 1,000 tasks a second and the default TTL that is 60,000). While "
        "this many are kept, new tasks are refused with a BACKPRESSURE error the client may retry; "
        "nothing already accepted is dropped. 0 means unbounded.",
    )
    task_result_max_bytes: int = _setting(
        1024**3,
        "task_result_max_bytes",
        Integer(0),
        _TASKS,
        "Most bytes of Arrow data the kept task results may hold (tables count their size; a result "
        "that streams counts what it holds in memory, as its FlightDataTaskResult.nbytes says). While "
        "the budget is used up, new tasks are refused with BACKPRESSURE, as above; up to task_threads "
        "tasks already running may still finish past it. Keep it well below the container's memory "
        "limit. 0 means unbounded.",
        default_doc="1073741824 (1 GiB)",
    )
    call_deadline_sec: float = _setting(
        0.0,
        "call_deadline_sec",
        Number(0, inclusive=True),
        _TASKS,
        "Longest a GetFlightInfo may wait for its task, counted from the task's submission (polls "
        "included), in the framework's task helpers (FlightServerMethods.task_flight_info, "
        "wait_for_task) and the Flight SQL layer: past it the task is cancelled and the call answers "
        "TIMEOUT. A client's own gRPC deadline cancels the task the same way. 0 means no deadline.",
    )
    task_poll_interval_sec: float = _setting(
        2.0,
        "task_poll_interval_sec",
        Number(0, inclusive=False),
        _TASKS,
        "How long one GetFlightInfo of the polling protocol (request header x-quiver-pollable, as "
        "GoodData FlexConnect clients send it) waits for the task before answering the retryable "
        "POLL error that tells the client how to retry or cancel.",
    )
    hold_thread_state: bool = _setting(
        True,
        "hold_thread_state",
        Flag(),
        _HOUSE,
        "Keep one Python thread state for the whole of each call instead of one per callback pyarrow "
        "makes into Python (a per-call saving of tens of microseconds on busy servers; see "
        "benchmarks/README.md). Turn it off only to measure without it.",
    )
    shutdown_timeout_sec: float = _setting(
        30.0,
        "shutdown_timeout_sec",
        Number(0, inclusive=True),
        _HOUSE,
        "Seconds a graceful shutdown waits for in-flight calls and running tasks before cancelling them "
        "(0 or more).",
    )

    def __post_init__(self) -> None:
        problems = _validate(self)
        if not isinstance(self.otel_config, OtelConfig):
            problems.append(f"otel_config: expected an OtelConfig, got {type(self.otel_config).__name__}")
        set_ = object.__setattr__
        # TLS material is read only when TLS is on (as in the original package, a stale certificate
        # setting in a config that does not use TLS is ignored; see SettingSpec.only_when)
        if self.use_tls and self.tls_cert_and_key is None and not _has_problem(problems, "tls_"):
            spec = _spec_of("tls_cert_and_key")
            problems += [spec.problem("required when use_tls is true", key) for key in spec.keys]
        if (
            self.use_tls
            and self.use_mutual_tls
            and self.tls_root_cert is None
            and not _has_problem(problems, "tls_root")
        ):
            problems.append(
                _spec_of("tls_root_cert").problem("required when use_mtls is true", "tls_root_certificate")
            )
        if not self.advertise_host:
            # may consult DNS, which is why it runs here, when the configuration is built, and only if needed
            set_(self, "advertise_host", socket.getfqdn())
        if not self.advertise_port:
            set_(self, "advertise_port", self.listen_port)  # 0 when listen_port is 0: the bound port
        if self.authentication_method is AuthenticationMethod.Token and not self.token_verification:
            set_(self, "token_verification", DEFAULT_TOKEN_VERIFICATION)
        if problems:
            raise ConfigError(problems)

    @property
    def use_mtls(self) -> bool:
        """Alias of ``use_mutual_tls``."""
        return self.use_mutual_tls

    def without_tls(self) -> ServerConfig:
        """A copy whose certificate, key and root certificate are replaced by a marker."""
        cert_and_key = (_MASK, _MASK) if self.tls_cert_and_key is not None else None
        root_cert = _MASK if self.tls_root_cert is not None else None
        return dataclasses.replace(self, tls_cert_and_key=cert_and_key, tls_root_cert=root_cert)


def _has_problem(problems: list[str], key_prefix: str) -> bool:
    return any(problem.startswith(f"{SERVER_SECTION}.{key_prefix}") for problem in problems)


def _spec_of(name: str) -> SettingSpec:
    spec: SettingSpec = next(f for f in dataclasses.fields(ServerConfig) if f.name == name).metadata[
        "setting"
    ]
    return spec


def config_warnings(config: ServerConfig) -> list[str]:
    """What is accepted (as the original package accepts it) but probably not what was meant."""
    warnings: list[str] = []
    unknown = sorted(set(config.log_trace_keys) - set(TRACE_KEYS))
    if unknown:
        warnings.append(
            _spec_of("log_trace_keys").problem(
                f"unknown keys {', '.join(unknown)} are ignored; the keys are {', '.join(TRACE_KEYS)}"
            )
        )
    targets = list(config.log_trace_keys.values())
    duplicates = sorted({name for name in targets if targets.count(name) > 1})
    if duplicates:
        warnings.append(
            _spec_of("log_trace_keys").problem(
                f"several trace keys are renamed to {', '.join(duplicates)}; log lines keep only one of them"
            )
        )
    otel = config.otel_config
    if otel.exporter_type is not None and otel.service_name is None:
        warnings.append(
            f"{SERVER_SECTION}.otel_service_name: not set although otel_exporter_type is "
            f"{otel.exporter_type.value}; spans report the service as gooddata-flight-server "
            f"(env {env_var_name(SERVER_SECTION, 'otel_service_name')})"
        )
    if config.use_mutual_tls and not config.use_tls:
        warnings.append(
            _spec_of("use_mutual_tls").problem(
                "has no effect without use_tls = true: client certificates are not checked"
            )
        )
    return warnings
