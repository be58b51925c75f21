"""OpenTelemetry through real servers and real spans (the console exporter, read back from stdout)."""

from __future__ import annotations

import json
from typing import Any

import pyarrow
import pyarrow.flight as flight
import pytest
from opentelemetry import trace

import gooddata_flight_server as gf
from gooddata_flight_server.testing import running_server
from tests.conftest import LogFile

MY_TRACER: trace.Tracer = trace.ProxyTracer("my_tracer")

_TRACED = {"otel_exporter_type": "console", "otel_service_name": "test-service"}


class _Task(gf.Task):
    def run(self) -> gf.TaskResult | gf.TaskError:
        with MY_TRACER.start_as_current_span("inside_task"):
            return gf.FlightDataTaskResult.for_data(pyarrow.table({"a": [1]}))


class _Methods(gf.FlightServerMethods):
    def __init__(self, ctx: gf.ServerContext) -> None:
        self.ctx = ctx

    def do_action(self, context: flight.ServerCallContext, action: flight.Action) -> Any:
        with MY_TRACER.start_as_current_span("do_some_work"):
            import structlog

            structlog.get_logger("svc").info("working")
        if action.type == "fail":
            raise gf.ErrorInfo.bad_argument("nope")
        if action.type == "generate":

            def results() -> Any:
                with MY_TRACER.start_as_current_span("while_streaming"):
                    yield b"one"

            return results()
        return [b"ok"]

    def get_flight_info(self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor) -> Any:
        task = _Task(descriptor.command)
        self.ctx.task_executor.submit(task)
        result = self.ctx.task_executor.wait_for_result(task.task_id)
        assert result is not None and result.result is not None
        return flight.FlightInfo(
            result.result.get_schema(),
            descriptor,
            [flight.FlightEndpoint(task.task_id.encode(), [self.ctx.location])],
            -1,
            -1,
        )


def _spans(text: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed: pretty JSON objects one after the other."""
    decoder = json.JSONDecoder()
    spans, index = [], 0
    while (start := text.find("{", index)) != -1:
        try:
            obj, index = decoder.raw_decode(text, start)
        except ValueError:
            index = start + 1
            continue
        if isinstance(obj, dict) and "context" in obj and "name" in obj:
            spans.append(obj)
    return spans


def _by_name(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    matching = [s for s in spans if s["name"] == name]
    assert len(matching) == 1, [s["name"] for s in spans]
    return matching[0]


def test_server_spans_per_rpc_with_user_spans_and_task_spans(capfd: pytest.CaptureFixture[str]) -> None:
    """Each RPC gets a SERVER span named after its method; user ProxyTracer and task spans nest under it."""
    with (
        running_server(_Methods, {"server": _TRACED}) as server,
        flight.FlightClient(server.location) as client,
    ):
        list(client.do_action(flight.Action("x", b"")))
        with pytest.raises(flight.FlightServerError):
            list(client.do_action(flight.Action("fail", b"")))
        client.get_flight_info(flight.FlightDescriptor.for_command(b"q"))
    spans = _spans(capfd.readouterr().out)
    actions = [s for s in spans if s["name"] == "DoAction"]
    assert len(actions) == 2
    ok, failed = sorted(actions, key=lambda s: s["status"]["status_code"] == "ERROR")
    assert ok["kind"] == "SpanKind.SERVER"
    assert ok["attributes"]["rpc.method"] == "DoAction"
    assert ok["attributes"]["rpc.service"] == "arrow.flight.protocol.FlightService"
    assert ok["attributes"]["rpc.system"]
    assert failed["status"]["status_code"] == "ERROR"
    work = [s for s in spans if s["name"] == "do_some_work"]
    assert {w["parent_id"] for w in work} == {a["context"]["span_id"] for a in actions}
    info = _by_name(spans, "GetFlightInfo")
    task = _by_name(spans, "task_execution")
    assert task["parent_id"] == info["context"]["span_id"]
    assert task["context"]["trace_id"] == info["context"]["trace_id"]
    assert _by_name(spans, "inside_task")["parent_id"] == task["context"]["span_id"]
    resource = info["resource"]["attributes"]
    assert resource["service.name"] == "test-service"
    assert resource["service.version"] == gf.__version__
    assert "process.pid" in resource and "os.type" in resource
    assert resource["service.instance.id"]


def test_parent_taken_from_w3c_headers_when_enabled(capfd: pytest.CaptureFixture[str]) -> None:
    """With otel_extract_context the RPC span continues the caller's trace from traceparent."""
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = [(b"traceparent", f"00-{trace_id}-{parent_id}-01".encode())]
    for extract in (True, False):
        settings = {"server": {**_TRACED, "otel_extract_context": extract}}
        with running_server(_Methods, settings) as server, flight.FlightClient(server.location) as client:
            list(client.do_action(flight.Action("x", b""), flight.FlightCallOptions(headers=headers)))
        span = _by_name(_spans(capfd.readouterr().out), "DoAction")
        assert (span["context"]["trace_id"] == f"0x{trace_id}") is extract
        assert (span["parent_id"] == f"0x{parent_id}") is extract


def test_log_lines_carry_trace_ids_matching_the_spans(
    capfd: pytest.CaptureFixture[str], log_file: LogFile
) -> None:
    """JSON log lines written inside a span carry its trace_id/span_id (renamable) matching the export."""
    settings = {"server": {**_TRACED, "log_trace_keys": {"trace_id": "traceId", "span_id": "spanId"}}}
    with running_server(_Methods, settings, logging_config=log_file.ini) as server:
        with flight.FlightClient(server.location) as client:
            list(client.do_action(flight.Action("x", b"")))
    work = _by_name(_spans(capfd.readouterr().out), "do_some_work")
    (line,) = log_file.events("working")
    assert f"0x{line['traceId']}" == work["context"]["trace_id"]
    assert f"0x{line['spanId']}" == work["context"]["span_id"]
    assert f"0x{line['parent_span_id']}" == work["parent_id"]


def test_without_exporter_everything_is_noop(capfd: pytest.CaptureFixture[str], log_file: LogFile) -> None:
    """Without an exporter no span is exported, user spans are non-recording and logs have no trace ids."""
    with running_server(_Methods, logging_config=log_file.ini) as server:
        with flight.FlightClient(server.location) as client:
            list(client.do_action(flight.Action("x", b"")))
        with MY_TRACER.start_as_current_span("outside") as span:
            assert not span.is_recording()
    assert _spans(capfd.readouterr().out) == []
    (line,) = log_file.events("working")
    assert "trace_id" not in line


def test_missing_exporter_package_names_the_extra() -> None:
    """An exporter whose package is not installed fails startup naming the extra to install."""
    try:
        import opentelemetry.exporter.otlp.proto.grpc  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the otlp-grpc exporter is installed here")
    settings = {"server": {"otel_exporter_type": "otlp-grpc", "otel_service_name": "svc"}}
    with pytest.raises(RuntimeError, match=r"gooddata-flight-server\[otel-exporter-otlp-grpc\]"):
        with running_server(_Methods, settings):
            pass


def test_code_running_while_results_stream_is_inside_the_call_span(capfd: pytest.CaptureFixture[str]) -> None:
    """Spans started by a result generator, after the handler returned, are children of the RPC span."""
    with running_server(_Methods, {"server": _TRACED}) as server:
        with flight.FlightClient(server.location) as client:
            list(client.do_action(flight.Action("generate", b"")))
    spans = _spans(capfd.readouterr().out)
    action = _by_name(spans, "DoAction")
    assert _by_name(spans, "while_streaming")["parent_id"] == action["context"]["span_id"]


def test_stopping_one_traced_server_keeps_tracing_in_another(capfd: pytest.CaptureFixture[str]) -> None:
    """ProxyTracer spans keep recording in a running server after another traced server stopped."""
    with running_server(_Methods, {"server": _TRACED}):
        with running_server(_Methods, {"server": _TRACED}):
            pass
        with MY_TRACER.start_as_current_span("still_traced") as span:
            assert span.is_recording()
