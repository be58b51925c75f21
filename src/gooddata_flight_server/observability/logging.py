"""Configure structlog over stdlib logging from a standard logging ini file.

Stdlib logging decides *where* lines go and *which* levels pass (the ini file, which users copy
and edit); structlog decides *what* a line looks like. Every handler the ini file creates gets a
`structlog.stdlib.ProcessorFormatter`, so events logged through structlog and plain stdlib records
from other libraries come out in one format: one JSON object per line (rendered with orjson) in
production, pretty console text in development.
"""

from __future__ import annotations

import configparser
import importlib.resources
import logging
import logging.config
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import orjson
import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "TRACE_KEYS",
    "LoggingConfigError",
    "configure_logging",
    "default_logging_config_path",
    "logging_configured",
]

TRACE_KEYS = ("trace_id", "span_id", "parent_span_id")
"""Keys the trace context processor adds; `configure_logging(trace_keys=...)` may rename them."""

_DEFAULT_CONFIG_NAME = "default.logging.ini"
_PACKAGE = __name__.rpartition(".")[0]
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS


class LoggingConfigError(ValueError):
    """Logging cannot be configured as asked, e.g. the ini file is missing or malformed.

    The message is a complete, single-line explanation (naming the file where there is one) so
    that the CLI can print it as is and exit, without a traceback.
    """


def default_logging_config_path() -> pathlib.Path:
    """Return the path of the `default.logging.ini` shipped in this package.

    Useful for users who want a starting point for their own configuration. `configure_logging`
    itself reads the shipped file through `importlib.resources`, so it works even where this
    function cannot (a package imported from a zip archive).
    """
    resource = importlib.resources.files(_PACKAGE).joinpath(_DEFAULT_CONFIG_NAME)
    if not isinstance(resource, pathlib.Path):
        raise LoggingConfigError(
            f"the shipped {_DEFAULT_CONFIG_NAME} is not a plain file on disk ({resource}); "
            "the package seems to be imported from an archive"
        )
    return resource


def logging_configured() -> bool:
    """Whether stdlib logging is set up already: the root logger has handlers (an application's,
    a test runner's capture, or an earlier configuration of ours)."""
    return bool(logging.getLogger().handlers)


def configure_logging(
    *,
    logging_config: str | os.PathLike[str] | None = None,
    dev_log: bool = False,
    event_key: str = "event",
    trace_keys: Mapping[str, str] | None = None,
    add_trace_context: bool = False,
) -> None:
    """Configure stdlib logging from an ini file and structlog to render through it.

    Safe to call repeatedly (several servers in one process, tests): stdlib's `fileConfig` closes
    and removes the handlers of the previous configuration and structlog is reconfigured, so lines
    are never duplicated.

    :param logging_config: stdlib logging ini file; `None` uses the shipped `default.logging.ini`
        (INFO and above to stderr). Formatters set in the file are replaced.
    :param dev_log: render pretty console text instead of JSON lines.
    :param event_key: key holding the event name in JSON output.
    :param trace_keys: renames for the keys in `TRACE_KEYS`, e.g. `{"trace_id": "traceId"}`.
    :param add_trace_context: add the ids of the current OpenTelemetry span to every line. Off by
        default so that servers without tracing pay nothing for it.
    :raises LoggingConfigError: the ini file cannot be read or applied, or `trace_keys` or
        `event_key` is invalid.
    """
    if not event_key:
        raise LoggingConfigError("the log event key name must not be empty")
    trace_processor = _TraceContextAdder(_resolve_trace_keys(trace_keys)) if add_trace_context else None
    parser, source = _read_config(logging_config)

    # Shared by structlog events (at call time) and by foreign stdlib records (at format time).
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if trace_processor is not None:
        shared.append(trace_processor)

    try:
        # disable_existing_loggers=False: loggers created at import time (by us and by libraries)
        # must keep working after configuration.
        logging.config.fileConfig(parser, disable_existing_loggers=False)
    except Exception as err:
        # fileConfig raises whatever its parts raise (KeyError for a missing section, ImportError
        # for an unknown handler class, OSError for an unwritable file...): report them all alike.
        raise LoggingConfigError(f"cannot apply logging config file '{source}': {_describe(err)}") from err

    for handler in _handlers_created_by(parser):
        handler.setFormatter(_make_formatter(handler, shared, dev_log=dev_log, event_key=event_key))

    structlog.configure(
        processors=[
            # Drop disabled levels before any other processor does work for nothing.
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached, so loggers obtained before a reconfiguration follow the new one.
        cache_logger_on_first_use=False,
    )


def _read_config(logging_config: str | os.PathLike[str] | None) -> tuple[configparser.ConfigParser, str]:
    """Read the ini file ourselves: `fileConfig` silently ignores a missing file and then fails
    with a bare `KeyError: 'formatters'` that tells the user nothing."""
    resource = (
        importlib.resources.files(_PACKAGE).joinpath(_DEFAULT_CONFIG_NAME)
        if logging_config is None
        else pathlib.Path(logging_config)
    )
    source = str(resource)
    try:
        text = resource.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LoggingConfigError(f"cannot read logging config file '{source}': {_describe(err)}") from err

    parser = configparser.ConfigParser()
    try:
        parser.read_string(text, source=source)
    except configparser.Error as err:
        raise LoggingConfigError(f"invalid logging config file '{source}': {_describe(err)}") from err
    if not parser.has_section("formatters"):
        # Our formatter replaces any configured one, so users may leave the section out.
        parser.add_section("formatters")
        parser.set("formatters", "keys", "")
    return parser, source


def _describe(err: BaseException) -> str:
    """One line for an error: the CLI prints the message without a traceback."""
    if isinstance(err, OSError) and err.strerror:
        text = err.strerror
    elif isinstance(err, KeyError):
        text = f"missing {err}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def _handlers_created_by(parser: configparser.ConfigParser) -> list[logging.Handler]:
    """Find the handlers `fileConfig` just attached, by the names the ini file gave them.

    Walking the loggers (rather than reading stdlib's private handler registry) keeps us on public
    API; matching by name leaves alone handlers that libraries attached to their own loggers.
    """
    names = {name.strip() for name in parser.get("handlers", "keys", fallback="").split(",") if name.strip()}
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers.extend(
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    )
    found: dict[int, logging.Handler] = {}
    for logger in loggers:
        for handler in logger.handlers:
            if handler.get_name() in names:
                found[id(handler)] = handler
    return list(found.values())


def _make_formatter(
    handler: logging.Handler, shared: list[Processor], *, dev_log: bool, event_key: str
) -> structlog.stdlib.ProcessorFormatter:
    """Build the formatter for one handler; per handler so colours follow that handler's stream."""
    renderers: list[Processor]
    if dev_log:
        renderers = [structlog.dev.ConsoleRenderer(colors=_is_tty(handler))]
    else:
        renderers = [structlog.processors.format_exc_info, _JsonRenderer(event_key)]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
    )


def _is_tty(handler: logging.Handler) -> bool:
    """Colour only real terminals: escape codes in files and pipes are noise."""
    stream = getattr(handler, "stream", None)
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):  # closed or detached stream
        return False


class _JsonRenderer:
    """Render one JSON line with orjson; a value it cannot encode is logged as text, not raised.

    The fixed fields come first and the event name goes under the configured key, so raw lines
    read well and aggregators find the event where they were told to look.
    """

    _LEADING = ("timestamp", "level", "logger")

    def __init__(self, event_key: str) -> None:
        self._event_key = event_key

    def __call__(self, _logger: WrappedLogger, _method_name: str, event_dict: EventDict) -> str:
        line = {key: event_dict.pop(key) for key in self._LEADING if key in event_dict}
        if "event" in event_dict:
            line[self._event_key] = event_dict.pop("event")
        for key, value in event_dict.items():
            line.setdefault(key, value)
        try:
            return orjson.dumps(line, default=_as_text, option=_ORJSON_OPTIONS).decode()
        except TypeError:
            # `default` handles unknown types, but a few failures bypass it (integers wider than
            # 64 bits, reference cycles): replace those values one by one rather than lose the line.
            safe = {key: _encodable(value) for key, value in line.items()}
            return orjson.dumps(safe, default=_as_text, option=_ORJSON_OPTIONS).decode()


def _encodable(value: Any) -> Any:
    """Return `value` if orjson can encode it, else its text."""
    try:
        orjson.dumps(value, default=_as_text, option=_ORJSON_OPTIONS)
    except TypeError:
        return _as_text(value)
    return value


def _as_text(value: Any) -> str:
    """Text of any object, even one whose `__str__` fails (a log call must never raise)."""
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__qualname__}>"


def _resolve_trace_keys(renames: Mapping[str, str] | None) -> tuple[str, str, str]:
    """Apply the rename map to `TRACE_KEYS`, rejecting keys that would be silently ignored."""
    renames = renames or {}
    unknown = sorted(set(renames) - set(TRACE_KEYS))
    if unknown:
        raise LoggingConfigError(
            f"unknown trace log keys {', '.join(unknown)}; allowed: {', '.join(TRACE_KEYS)}"
        )
    empty = sorted(key for key, value in renames.items() if not value)
    if empty:
        raise LoggingConfigError(f"trace log keys {', '.join(empty)} are renamed to an empty name")
    trace_id, span_id, parent_span_id = (renames.get(key, key) for key in TRACE_KEYS)
    return trace_id, span_id, parent_span_id


class _TraceContextAdder:
    """Processor adding the current OpenTelemetry span's ids, so log lines join their traces.

    The ids use OpenTelemetry's hex formatting, as trace backends display them. A span whose
    context is invalid (no span, or tracing not configured) adds nothing.
    """

    def __init__(self, keys: tuple[str, str, str]) -> None:
        self._trace_id_key, self._span_id_key, self._parent_span_id_key = keys

    def __call__(self, _logger: WrappedLogger, _method_name: str, event_dict: EventDict) -> EventDict:
        span = trace.get_current_span()
        context = span.get_span_context()
        if not context.is_valid:
            return event_dict
        event_dict[self._trace_id_key] = trace.format_trace_id(context.trace_id)
        event_dict[self._span_id_key] = trace.format_span_id(context.span_id)
        # Only SDK spans know their parent; the API's Span interface does not expose it.
        parent = getattr(span, "parent", None)
        if isinstance(parent, trace.SpanContext) and parent.is_valid:
            event_dict[self._parent_span_id_key] = trace.format_span_id(parent.span_id)
        return event_dict
