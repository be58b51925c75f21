"""Tests for structlog-over-stdlib logging configured from an ini file."""

from __future__ import annotations

import datetime
import importlib.resources
import json
import logging
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from gooddata_flight_server.observability.logging import (
    LoggingConfigError,
    configure_logging,
    default_logging_config_path,
)

_INI_TEMPLATE = """\
[loggers]
keys=root

[handlers]
keys=file

[formatters]
keys={formatter_keys}
{formatter_sections}
[logger_root]
level=INFO
handlers=file

[handler_file]
class=FileHandler
args=({path!r}, 'a', 'utf-8')
{handler_formatter}
"""


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo global logging and structlog configuration so other tests see the defaults."""
    root = logging.getLogger()
    level = root.level
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    for handler in list(root.handlers):
        if isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


class _LogFile:
    """A temporary ini file whose only handler appends rendered lines to a file we can read."""

    def __init__(self, tmp_path: pathlib.Path, *, plain_formatter: bool = False) -> None:
        self.path = tmp_path / "out.log"
        self.ini = tmp_path / "logging.ini"
        self.ini.write_text(
            _INI_TEMPLATE.format(
                path=str(self.path),
                formatter_keys="plain" if plain_formatter else "",
                formatter_sections="\n[formatter_plain]\nformat=PLAIN %(message)s\n"
                if plain_formatter
                else "",
                handler_formatter="formatter=plain" if plain_formatter else "",
            ),
            encoding="utf-8",
        )

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8") if self.path.exists() else ""

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines()]


@pytest.fixture
def log_file(tmp_path: pathlib.Path) -> _LogFile:
    return _LogFile(tmp_path)


def test_event_is_one_json_line_with_standard_fields(log_file: _LogFile) -> None:
    """A structlog event renders as one JSON line with event, UTC ISO timestamp, level, logger and values."""
    configure_logging(logging_config=log_file.ini)
    before = datetime.datetime.now(datetime.timezone.utc)

    structlog.get_logger("my_service").info("task_finished", task_id="t-1", duration=1.5)

    lines = log_file.text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "task_finished"
    assert record["level"] == "info"
    assert record["logger"] == "my_service"
    assert record["task_id"] == "t-1"
    assert record["duration"] == 1.5
    assert record["timestamp"].endswith("Z")
    timestamp = datetime.datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
    assert timestamp.utcoffset() == datetime.timedelta(0)
    assert before - datetime.timedelta(seconds=5) <= timestamp <= before + datetime.timedelta(seconds=5)


def test_event_key_is_renamed_and_follows_reconfiguration(log_file: _LogFile) -> None:
    """The event goes under event_key, and a logger obtained earlier follows a later reconfiguration."""
    log = structlog.get_logger("svc")
    configure_logging(logging_config=log_file.ini)
    log.info("first")
    configure_logging(logging_config=log_file.ini, event_key="msg")
    log.info("second", msg="ignored")

    first, second = log_file.records()
    assert first["event"] == "first"
    assert "msg" not in first
    assert second["msg"] == "second"
    assert "event" not in second


def test_bound_contextvars_appear(log_file: _LogFile) -> None:
    """Values bound with structlog.contextvars are added to structlog and foreign stdlib lines."""
    configure_logging(logging_config=log_file.ini)
    structlog.contextvars.bind_contextvars(peer="ipv4:127.0.0.1:1234", call="DoGet")

    structlog.get_logger("svc").info("call_started")
    logging.getLogger("some.library").info("library message")

    for record in log_file.records():
        assert record["peer"] == "ipv4:127.0.0.1:1234"
        assert record["call"] == "DoGet"


def test_exception_traceback_is_rendered(log_file: _LogFile) -> None:
    """exc_info puts the formatted traceback under `exception`, for structlog and stdlib records."""
    configure_logging(logging_config=log_file.ini)
    try:
        raise ZeroDivisionError("boom-structlog")
    except ZeroDivisionError:
        structlog.get_logger("svc").exception("task_failed")
    try:
        raise KeyError("boom-stdlib")
    except KeyError:
        logging.getLogger("lib").error("failed", exc_info=True)

    from_structlog, from_stdlib = log_file.records()
    assert from_structlog["level"] == "error"
    assert from_structlog["exception"].startswith("Traceback (most recent call last):")
    assert "ZeroDivisionError: boom-structlog" in from_structlog["exception"]
    assert "exc_info" not in from_structlog
    assert "KeyError: 'boom-stdlib'" in from_stdlib["exception"]


def test_foreign_stdlib_record_is_rendered_as_json(log_file: _LogFile) -> None:
    """Plain stdlib logging from other libraries renders as the same JSON, with %-args applied."""
    configure_logging(logging_config=log_file.ini, event_key="msg")

    logging.getLogger("pyarrow.something").warning("retrying %s in %d s", "connect", 3)

    (record,) = log_file.records()
    assert record["msg"] == "retrying connect in 3 s"
    assert record["level"] == "warning"
    assert record["logger"] == "pyarrow.something"
    assert "timestamp" in record


def test_unserialisable_values_do_not_break_logging(log_file: _LogFile) -> None:
    """Values orjson cannot encode are logged as text instead of raising or losing the line."""

    class Opaque:
        def __str__(self) -> str:
            return "opaque-value"

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no text for you")

    cycle: list[Any] = []
    cycle.append(cycle)
    configure_logging(logging_config=log_file.ini)

    structlog.get_logger("svc").info(
        "odd_values", opaque=Opaque(), broken=Broken(), huge=2**70, cycle=cycle, ints={1: "a"}
    )

    (record,) = log_file.records()
    assert record["opaque"] == "opaque-value"
    assert record["broken"] == "<unprintable test_unserialisable_values_do_not_break_logging.<locals>.Broken>"
    assert record["huge"] == str(2**70)
    assert record["cycle"] == "[[...]]"
    assert record["ints"] == {"1": "a"}


def test_reconfiguring_does_not_duplicate_lines(log_file: _LogFile) -> None:
    """Calling configure_logging twice replaces handlers instead of adding more."""
    configure_logging(logging_config=log_file.ini)
    configure_logging(logging_config=log_file.ini)

    structlog.get_logger("svc").info("once")
    logging.getLogger("lib").info("also once")

    assert [record["event"] for record in log_file.records()] == ["once", "also once"]
    assert len(logging.getLogger().handlers) == 1


def test_level_from_ini_filters_events(log_file: _LogFile) -> None:
    """Events below the level configured in the ini file are not written."""
    configure_logging(logging_config=log_file.ini)

    structlog.get_logger("svc").debug("too_detailed")
    logging.getLogger("lib").debug("too detailed")

    assert log_file.text() == ""


def test_formatter_from_ini_is_replaced(tmp_path: pathlib.Path) -> None:
    """A formatter configured in the ini file does not change the rendered lines."""
    log_file = _LogFile(tmp_path, plain_formatter=True)
    configure_logging(logging_config=log_file.ini)

    structlog.get_logger("svc").info("still_json")

    assert "PLAIN" not in log_file.text()
    assert log_file.records()[0]["event"] == "still_json"


def test_ini_without_formatters_section_is_accepted(log_file: _LogFile) -> None:
    """The [formatters] section may be left out since formatters are ours anyway."""
    text = log_file.ini.read_text(encoding="utf-8").replace("[formatters]\nkeys=\n", "")
    assert "[formatters]" not in text
    log_file.ini.write_text(text, encoding="utf-8")

    configure_logging(logging_config=log_file.ini)
    structlog.get_logger("svc").info("configured")

    assert log_file.records()[0]["event"] == "configured"


def test_dev_log_renders_console_text(log_file: _LogFile) -> None:
    """dev_log renders readable text, not JSON, without colour codes on a non-terminal stream."""
    configure_logging(logging_config=log_file.ini, dev_log=True)

    structlog.get_logger("svc").info("server_started", port=17001)

    text = log_file.text()
    assert "server_started" in text
    assert "port=17001" in text
    assert "\x1b[" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_shipped_default_config_logs_info_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a config file the shipped default.logging.ini sends INFO and above to stderr as JSON."""
    configure_logging()

    structlog.get_logger("svc").info("default_config")
    structlog.get_logger("svc").debug("not_shown")

    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert json.loads(line)["event"] == "default_config"
    assert logging.getLogger().level == logging.INFO


def test_default_config_path_is_the_packaged_file() -> None:
    """default_logging_config_path points at the packaged default.logging.ini resource."""
    path = default_logging_config_path()
    resource = importlib.resources.files("gooddata_flight_server.observability") / "default.logging.ini"

    assert path.name == "default.logging.ini"
    assert path.read_text(encoding="utf-8") == resource.read_text(encoding="utf-8")
    assert "args=(sys.stderr,)" in path.read_text(encoding="utf-8")


def test_missing_config_file_raises_error_naming_it(tmp_path: pathlib.Path) -> None:
    """A missing logging config file raises LoggingConfigError whose one-line message names the file."""
    missing = tmp_path / "nope.ini"

    with pytest.raises(LoggingConfigError) as info:
        configure_logging(logging_config=missing)

    assert str(missing) in str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("this is not an ini file\n", id="not-ini"),
        pytest.param("[loggers]\nkeys=root\n", id="missing-sections"),
        pytest.param(
            "[loggers]\nkeys=root\n[handlers]\nkeys=h\n[logger_root]\nhandlers=h\n"
            "[handler_h]\nclass=NoSuchHandler\n",
            id="unknown-handler-class",
        ),
    ],
)
def test_invalid_config_file_raises_error_naming_it(tmp_path: pathlib.Path, content: str) -> None:
    """A malformed logging config file raises LoggingConfigError naming the file, not a bare KeyError."""
    ini = tmp_path / "bad.ini"
    ini.write_text(content, encoding="utf-8")

    with pytest.raises(LoggingConfigError, match=r"bad\.ini"):
        configure_logging(logging_config=ini)


def test_unknown_trace_key_is_rejected(log_file: _LogFile) -> None:
    """Renaming a key that is not a trace key is an error rather than silently ignored."""
    with pytest.raises(LoggingConfigError, match="span"):
        configure_logging(logging_config=log_file.ini, trace_keys={"span": "spanId"}, add_trace_context=True)


def test_trace_context_added_under_renamed_keys(log_file: _LogFile) -> None:
    """Inside an active span the current trace, span and parent span ids are added, renamed as asked."""
    configure_logging(
        logging_config=log_file.ini,
        add_trace_context=True,
        trace_keys={"trace_id": "traceId", "parent_span_id": "parentSpanId"},
    )
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("test")

    with tracer.start_as_current_span("parent") as parent, tracer.start_as_current_span("child") as child:
        structlog.get_logger("svc").info("in_span")
        logging.getLogger("lib").info("library in span")
    structlog.get_logger("svc").info("outside_span")

    in_span, library_in_span, outside = log_file.records()
    for record in (in_span, library_in_span):
        assert record["traceId"] == format(child.get_span_context().trace_id, "032x")
        assert record["span_id"] == format(child.get_span_context().span_id, "016x")
        assert record["parentSpanId"] == format(parent.get_span_context().span_id, "016x")
        assert "trace_id" not in record
        assert "parent_span_id" not in record
    assert not {"traceId", "span_id", "parentSpanId"} & outside.keys()


def test_trace_context_absent_when_disabled(log_file: _LogFile) -> None:
    """Without add_trace_context no trace keys are added, even inside an active span."""
    configure_logging(logging_config=log_file.ini)
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("test")

    with tracer.start_as_current_span("span"):
        structlog.get_logger("svc").info("in_span")

    (record,) = log_file.records()
    assert record["event"] == "in_span"
    assert not {"trace_id", "span_id", "parent_span_id"} & record.keys()


def test_root_span_has_no_parent_span_id(log_file: _LogFile) -> None:
    """A span without a parent adds trace and span ids but no parent_span_id."""
    configure_logging(logging_config=log_file.ini, add_trace_context=True)
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("test")

    with tracer.start_as_current_span("root") as span:
        structlog.get_logger("svc").info("in_root_span")

    (record,) = log_file.records()
    assert record["span_id"] == format(span.get_span_context().span_id, "016x")
    assert "trace_id" in record
    assert "parent_span_id" not in record


def test_importing_module_configures_nothing() -> None:
    """Importing the logging module in a fresh interpreter leaves logging and structlog unconfigured."""
    code = (
        "import logging, structlog\n"
        "import gooddata_flight_server.observability.logging\n"
        "assert not logging.getLogger().handlers\n"
        "assert not structlog.is_configured()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
