"""Configuration: TOML files plus ``GOODDATA_FLIGHT_*`` environment variables -> frozen ``ServerConfig``.

This is the only module that touches Dynaconf and ``os.environ``; everything else receives the
frozen objects built here (and user code gets the Dynaconf object for its own sections).

How a configuration is put together, and why:

- Config files are TOML. We read and merge them ourselves rather than through Dynaconf's
  ``settings_files`` so that a missing file, a directory or a syntax error is reported against that
  file, so that a relative name is never searched for in parent directories, and so that no
  ``dynaconf_hooks.py`` or ``*.local.toml`` next to a file is picked up behind the user's back.
- Later files override earlier ones key by key: tables merge recursively, every other value
  (lists included) is replaced. Dynaconf's own ``merge_enabled`` would concatenate lists, so a
  token list set in the environment would be appended to the one in a file instead of replacing it.
- The merged files are handed to ``Dynaconf`` as its initial values; Dynaconf then applies the
  environment on top (``GOODDATA_FLIGHT_{SECTION}__{KEY}``, values parsed as TOML). Dynaconf's own
  value tokens (``@format``, ``@int``, ``@read_file``, ``@none`` ...) keep working in both places.
- ``@/path/to/file.pem`` is our notation for TLS material. Dynaconf only rewrites a value whose
  first word is one of its tokens, so ``@`` followed by a path reaches us intact from files and env.
- A fresh Dynaconf is built on every call: many servers may run in one process and nothing is
  cached between them. Nothing happens at import time.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import socket
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from dynaconf import Dynaconf, default_settings

from gooddata_flight_server._settings_parse import ENV_PREFIX, FrozenMap, SectionReader, show

if sys.version_info >= (3, 11):
    import tomllib
else:  # Dynaconf vendors tomli as tomllib; reusing it avoids a dependency just for Python 3.10
    from dynaconf.vendor import tomllib

__all__ = [
    "AuthenticationMethod",
    "ConfigError",
    "OtelConfig",
    "OtelExporterType",
    "ServerConfig",
    "load_settings",
]

SERVER_SECTION = "server"
TRACE_KEYS = ("trace_id", "span_id", "parent_span_id")
"""Log keys that ``log_trace_keys`` may rename."""

_MASK = b"<masked>"


class AuthenticationMethod(enum.Enum):
    NoAuth = "none"
    Token = "token"


class OtelExporterType(enum.Enum):
    Zipkin = "zipkin"
    OtlpHttp = "otlp-http"
    OtlpGrpc = "otlp-grpc"
    Console = "console"


@dataclasses.dataclass(frozen=True)
class OtelConfig:
    """OpenTelemetry settings; ``exporter_type`` None means tracing is a no-op."""

    exporter_type: OtelExporterType | None
    service_name: str | None
    service_namespace: str | None
    service_instance_id: str | None
    extract_context: bool


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Validated ``[server]`` settings; see sample-config.toml for what each one means.

    TLS material is left out of ``repr`` so that logging the config by accident cannot leak a
    private key; use ``without_tls()`` before dumping it field by field (e.g. ``dataclasses.asdict``).
    """

    listen_host: str
    listen_port: int
    advertise_host: str
    advertise_port: int | None
    """None: advertise the port actually bound (matters when listen_port is 0)."""
    use_tls: bool
    use_mtls: bool
    tls_cert_and_key: tuple[bytes, bytes] | None = dataclasses.field(repr=False)
    tls_root_cert: bytes | None = dataclasses.field(repr=False)
    authentication_method: AuthenticationMethod
    token_header_name: str | None
    token_verification: str | None
    task_threads: int
    task_close_threads: int
    task_result_ttl_sec: float
    task_queue_size: int
    """0: unbounded."""
    metrics_host: str | None
    metrics_port: int
    health_check_host: str | None
    health_check_port: int
    malloc_trim_interval_sec: float
    log_event_key_name: str
    log_trace_keys: Mapping[str, str]
    otel_config: OtelConfig
    shutdown_timeout_sec: float

    def without_tls(self) -> ServerConfig:
        """A copy whose certificate, key and root certificate are replaced by a marker."""
        cert_and_key = (_MASK, _MASK) if self.tls_cert_and_key is not None else None
        root_cert = _MASK if self.tls_root_cert is not None else None
        return dataclasses.replace(self, tls_cert_and_key=cert_and_key, tls_root_cert=root_cert)


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` holds every problem found, one line each."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        count = len(self.problems)
        header = f"invalid configuration ({count} problem{'s' if count != 1 else ''}):"
        return "\n".join([header, *(f"  - {problem}" for problem in self.problems)])


# The one place that lists the [server] settings and their defaults. None means "not set"; the
# settings whose default depends on other settings (advertise_host, token_verification) are
# resolved in _server_config.
_SERVER_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "listen_host": "127.0.0.1",
        "listen_port": 17001,
        "advertise_host": None,
        "advertise_port": None,
        "use_tls": False,
        "use_mtls": False,
        "tls_certificate": None,
        "tls_private_key": None,
        "tls_root_certificate": None,
        "authentication_method": AuthenticationMethod.NoAuth,
        "token_header_name": None,
        "token_verification": None,
        "task_threads": 32,
        "task_close_threads": 2,
        "task_result_ttl_sec": 60.0,
        "task_queue_size": 0,
        "metrics_host": None,
        "metrics_port": 17101,
        "health_check_host": None,
        "health_check_port": 8877,
        "malloc_trim_interval_sec": 30.0,
        "log_event_key_name": "event",
        "log_trace_keys": {},
        "otel_exporter_type": None,
        "otel_service_name": None,
        "otel_service_namespace": None,
        "otel_service_instance_id": None,
        "otel_extract_context": False,
        "shutdown_timeout_sec": 30.0,
    }
)
_DEFAULT_TOKEN_VERIFICATION = "EnumeratedTokenVerification"
_MAX_PORT = 65535


def load_settings(config_files: Sequence[str | os.PathLike[str]] = ()) -> tuple[Dynaconf, ServerConfig]:
    """Read the config files and the environment afresh, validate ``[server]``, return both views.

    The Dynaconf object gives user code its own sections (``settings.get("my_service.opt1")``).
    Raises ConfigError listing every problem: unreadable files first (nothing else is checked
    then, to avoid a cascade of problems caused by settings that were never read), otherwise
    every invalid ``[server]`` setting at once.
    """
    if isinstance(config_files, (str, os.PathLike)):  # a lone path is a common slip; str is a Sequence
        config_files = (config_files,)
    file_values, problems = _read_config_files(config_files)
    if problems:
        raise ConfigError(problems)
    settings = Dynaconf(
        **{key.upper(): value for key, value in file_values.items()},
        envvar_prefix=ENV_PREFIX,
        environments=False,
        load_dotenv=False,
    )
    try:
        # Dynaconf loads lazily; this access reads the environment and applies value tokens.
        raw_section = settings.get(SERVER_SECTION)
    except Exception as e:  # Dynaconf raises assorted types for a bad @token (parse, format, type errors)
        # the exception's text may quote a value, and values may be secrets: name the suspects only
        suspects = sorted(
            k for k, v in os.environ.items() if k.startswith(f"{ENV_PREFIX}_") and v.lstrip()[:1] == "@"
        )
        where = f"; variables with @tokens: {', '.join(suspects)}" if suspects else ""
        message = (
            f"cannot load settings ({type(e).__name__}): check Dynaconf @tokens in files and variables{where}"
        )
        raise ConfigError([message]) from None
    section = _plain_section(raw_section, problems)
    config = _server_config(section, problems)
    if problems:
        raise ConfigError(problems)
    return settings, config


def _read_config_files(paths: Iterable[str | os.PathLike[str]]) -> tuple[dict[str, Any], list[str]]:
    merged: dict[str, Any] = {}
    problems: list[str] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            problems.append(f"config file '{path}': is a directory")
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            problems.append(f"config file '{path}': does not exist")
            continue
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"config file '{path}': cannot be read: {getattr(e, 'strerror', None) or e}")
            continue
        except tomllib.TOMLDecodeError as e:
            problems.append(f"config file '{path}': invalid TOML: {e}")
            continue
        problems.extend(
            f"config file '{path}': top-level key '{key}' is reserved for Dynaconf's own options; "
            f"put settings in a section such as [my_service]"
            for key in data
            if _reserved_by_dynaconf(key)
        )
        _merge_into(merged, data)
    return merged, problems


def _merge_into(base: dict[str, Any], update: Mapping[str, Any]) -> None:
    """Tables merge recursively; anything else replaces. Keys match case-insensitively like Dynaconf."""
    for key, value in update.items():
        existing = next((k for k in base if k.lower() == key.lower()), key)
        if isinstance(value, Mapping) and isinstance(base.get(existing), dict):
            _merge_into(base[existing], value)
        else:
            base.pop(existing, None)
            base[key] = _copy_tables(value)


def _copy_tables(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _copy_tables(item) for key, item in value.items()}
    return value


def _reserved_by_dynaconf(key: str) -> bool:
    """Dynaconf reads these names passed as initial values as its own options (``env`` even crashes it)."""
    upper = key.upper()
    return (
        "DYNACONF" in upper
        or f"{upper}_FOR_DYNACONF" in vars(default_settings)
        or upper in ("SETTINGS_FILES", "ENVIRONMENT", "SETTINGS_MODULE", "PROJECT_ROOT", "VALIDATORS")
    )


def _plain_section(raw: Any, problems: list[str]) -> dict[str, Any]:
    """[server] as a plain dict with lowercase keys (env adds them upper-case), lazy values evaluated."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append(f"{SERVER_SECTION}: expected a table, got {show(raw)} (env {ENV_PREFIX}_SERVER)")
        return {}
    section: dict[str, Any] = {}
    for key in list(raw.keys()):
        name = str(key).lower()
        try:
            section[name] = raw[key]
        except Exception as e:  # a Dynaconf @format/@jinja value that cannot be evaluated
            problems.append(f"{SERVER_SECTION}.{name}: cannot evaluate value: {e}")
    return section


def _server_config(section: Mapping[str, Any], problems: list[str]) -> ServerConfig:
    r = SectionReader(SERVER_SECTION, section, _SERVER_DEFAULTS, problems)
    r.reject_unknown_keys()

    use_tls = r.boolean("use_tls")
    use_mtls = r.boolean("use_mtls")
    certificate = r.pem("tls_certificate")
    private_key = r.pem("tls_private_key")
    root_certificate = r.pem("tls_root_certificate")
    if use_tls:
        for key in ("tls_certificate", "tls_private_key"):
            if not r.is_set(key):
                r.problem(key, "required when use_tls is true")
    if use_mtls:
        if not use_tls:
            r.problem("use_mtls", "requires use_tls = true")
        if not r.is_set("tls_root_certificate"):
            r.problem("tls_root_certificate", "required when use_mtls is true")

    auth_method = r.choice("authentication_method", AuthenticationMethod)
    token_verification = r.string("token_verification")
    if token_verification is None and auth_method is AuthenticationMethod.Token:
        token_verification = _DEFAULT_TOKEN_VERIFICATION

    exporter = r.choice("otel_exporter_type", OtelExporterType, none_word="none")
    service_name = r.string("otel_service_name")
    if exporter is not None and service_name is None:
        r.problem("otel_service_name", f"required when otel_exporter_type is {exporter.value}")

    return ServerConfig(
        listen_host=r.string("listen_host"),
        listen_port=r.integer("listen_port", 0, _MAX_PORT),
        # getfqdn may consult DNS, which is why it runs here, when settings are loaded, and only if needed
        advertise_host=r.string("advertise_host") or socket.getfqdn(),
        advertise_port=r.integer("advertise_port", 1, _MAX_PORT),
        use_tls=use_tls,
        use_mtls=use_mtls,
        tls_cert_and_key=(certificate, private_key) if certificate and private_key else None,
        tls_root_cert=root_certificate,
        authentication_method=auth_method or AuthenticationMethod.NoAuth,
        token_header_name=r.string("token_header_name"),
        token_verification=token_verification,
        task_threads=r.integer("task_threads", 1),
        task_close_threads=r.integer("task_close_threads", 1),
        task_result_ttl_sec=r.number("task_result_ttl_sec", 0, inclusive=False),
        task_queue_size=r.integer("task_queue_size", 0),
        metrics_host=r.string("metrics_host"),
        metrics_port=r.integer("metrics_port", 0, _MAX_PORT),
        health_check_host=r.string("health_check_host"),
        health_check_port=r.integer("health_check_port", 0, _MAX_PORT),
        malloc_trim_interval_sec=r.number("malloc_trim_interval_sec", 0, inclusive=False),
        log_event_key_name=r.string("log_event_key_name"),
        log_trace_keys=FrozenMap(r.string_map("log_trace_keys", TRACE_KEYS)),
        otel_config=OtelConfig(
            exporter_type=exporter,
            service_name=service_name,
            service_namespace=r.string("otel_service_namespace"),
            service_instance_id=r.string("otel_service_instance_id"),
            extract_context=r.boolean("otel_extract_context"),
        ),
        shutdown_timeout_sec=r.number("shutdown_timeout_sec", 0, inclusive=True),
    )
