"""Code and configuration written for the original package keep working: module paths, signatures,
the original's own config tests (written again here), executors built by hand, CLI spellings.

The end-to-end proof with the original's main user, GoodData FlexConnect, is in tests/compat.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow
import pyarrow.flight
import pytest

import gooddata_flight_server as gf

# module path of the original package -> names user code imports from it
ORIGINAL_PATHS = {
    "gooddata_flight_server.server.base": [
        "ServerContext",
        "FlightServerMethods",
        "FlightServerMethodsFactory",
    ],
    "gooddata_flight_server.server.server_main": ["GoodDataFlightServer", "create_server"],
    "gooddata_flight_server.server.flight_rpc.server_methods": ["FlightServerMethods"],
    "gooddata_flight_server.server.flight_rpc.flight_middleware": ["CallInfo", "CallFinalizer"],
    "gooddata_flight_server.server.auth.token_verifier": ["TokenVerificationStrategy"],
    "gooddata_flight_server.server.auth.auth_middleware": ["TokenAuthMiddleware"],
    "gooddata_flight_server.server.auth.token_verifier_impl": ["EnumeratedTokenVerification"],
    "gooddata_flight_server.tasks.base": ["ArrowData", "TaskWaitTimeoutError"],
    "gooddata_flight_server.tasks.task": ["Task"],
    "gooddata_flight_server.tasks.task_error": ["TaskError"],
    "gooddata_flight_server.tasks.task_result": [
        "FlightDataTaskResult",
        "ListFlightsTaskResult",
        "TaskExecutionResult",
        "TaskResult",
    ],
    "gooddata_flight_server.tasks.task_executor": ["TaskExecutor"],
    "gooddata_flight_server.tasks.thread_task_executor": ["ThreadTaskExecutor"],
    "gooddata_flight_server.errors.error_code": ["ErrorCode"],
    "gooddata_flight_server.errors.error_info": ["ErrorInfo", "RetryInfo"],
    "gooddata_flight_server.config.config": [
        "ServerConfig",
        "OtelConfig",
        "AuthenticationMethod",
        "OtelExporterType",
        "read_config",
    ],
    "gooddata_flight_server.health.server_health_monitor": ["ModuleHealthStatus", "ServerHealthMonitor"],
    "gooddata_flight_server.utils.methods_discovery": ["flight_server_methods", "get_methods_factory"],
    "gooddata_flight_server.exceptions": ["ServerStartupInterrupted", "FlightMethodsModuleError"],
}


@pytest.mark.parametrize("path", sorted(ORIGINAL_PATHS))
def test_original_module_paths_import(path: str) -> None:
    """Every module path of the original that user code imports from works, and a name exported by
    ``gooddata_flight_server`` is the very same object there."""
    module = importlib.import_module(path)
    for name in ORIGINAL_PATHS[path]:
        value = getattr(module, name)
        if name in gf.__all__:
            assert value is getattr(gf, name), (path, name)


def test_middleware_names_of_the_original() -> None:
    """The keys handlers pass to context.get_middleware are class attributes, as in the original."""
    assert gf.CallInfo.MiddlewareName == "call_info"
    assert gf.CallFinalizer.MiddlewareName == "call_finalizer"
    assert gf.TokenAuthMiddleware.MiddlewareName == "auth_token"
    assert gf.TokenAuthMiddleware("secret-token", {"sub": "x"}).token_data == {"sub": "x"}


# -- the original's own configuration tests, written again ------------------------------------------

_ORIGINAL_SAMPLE = """
[server]
listen_host = "127.0.0.1"
listen_port = 17001
advertise_host = "127.0.0.1"
advertise_port = 17001
task_threads = 32
metrics_host = "0.0.0.0"
metrics_port = 17101
health_check_host = "0.0.0.0"
health_check_port = 8877
malloc_trim_interval_sec = 30
log_event_key_name = "event"
log_trace_keys = { "trace_id" = "trace_id", "span_id" = "trace_id", "parent_span_id" = "parent_span_id" }
otel_exporter_type = "otlp-grpc"
otel_service_name = "your-service-name"
otel_service_namespace = "your-namespace"
otel_service_instance_id = "your-service-instance-id"
otel_extract_context = true
"""


def _write(tmp_path: Path, text: str, name: str = "config.toml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def test_read_config_of_the_originals_sample(tmp_path: Path) -> None:
    """The original's sample config (with two trace keys renamed to one name) loads through the
    original's read_config(files) with the original's field names."""
    from gooddata_flight_server.config.config import OtelExporterType, read_config

    _, config = read_config((_write(tmp_path, _ORIGINAL_SAMPLE),))
    assert (config.listen_host, config.listen_port, config.advertise_port) == ("127.0.0.1", 17001, 17001)
    assert (config.task_threads, config.metrics_host, config.metrics_port) == (32, "0.0.0.0", 17101)
    assert (config.health_check_host, config.health_check_port) == ("0.0.0.0", 8877)
    assert config.log_event_key_name == "event"
    otel = config.otel_config
    assert otel.exporter_type is OtelExporterType.OtlpGrpc
    assert (otel.service_name, otel.service_namespace) == ("your-service-name", "your-namespace")
    assert otel.service_instance_id == "your-service-instance-id"
    assert otel.extract_context_from_headers is True


def test_read_config_of_an_empty_file(tmp_path: Path) -> None:
    """An empty config gives the original's defaults; advertise_port follows listen_port."""
    from gooddata_flight_server.config.config import AuthenticationMethod, read_config

    _, config = read_config((_write(tmp_path, "[server]\n"),))
    assert (config.listen_host, config.listen_port, config.advertise_port) == ("127.0.0.1", 17001, 17001)
    assert (config.metrics_host, config.health_check_host) == (None, None)
    assert config.otel_config.exporter_type is None
    assert config.otel_config.extract_context_from_headers is False
    assert config.authentication_method is AuthenticationMethod.NoAuth
    assert (config.token_header_name, config.token_verification) == (None, None)


def test_read_config_with_inline_tls_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inline TLS values are taken as they are (not checked for PEM until TLS starts), a file named
    with '@' in the environment is read, and use_mutual_tls reflects use_mtls."""
    from gooddata_flight_server.config.config import read_config

    key = tmp_path / "private_key.pem"
    key.write_text("The matrix has you :D\n")
    monkeypatch.setenv("GOODDATA_FLIGHT_SERVER__TLS_PRIVATE_KEY", f"@{key}")
    text = """
    [server]
    use_tls = true
    use_mtls = true
    tls_certificate = "inlined cert"
    tls_root_certificate = "inlined ca cert"
    """
    _, config = read_config((_write(tmp_path, text),))
    assert (config.use_tls, config.use_mutual_tls) == (True, True)
    assert config.tls_cert_and_key == (b"inlined cert", b"The matrix has you :D\n")
    assert config.tls_root_cert == b"inlined ca cert"


def test_read_config_with_token_authentication(tmp_path: Path) -> None:
    """Token authentication with a custom header; the strategy defaults to the enumerated tokens."""
    from gooddata_flight_server.config.config import AuthenticationMethod, read_config

    text = '[server]\nauthentication_method = "token"\ntoken_header_name = "x-my-header"\n'
    _, config = read_config((_write(tmp_path, text),))
    assert config.authentication_method is AuthenticationMethod.Token
    assert config.token_header_name == "x-my-header"
    assert config.token_verification == "EnumeratedTokenVerification"


def test_server_config_built_in_code_validates_like_files() -> None:
    """ServerConfig built in Python normalises spellings and reports invalid values with their
    setting and environment variable, as loading does."""
    config = gf.ServerConfig(listen_port="0", task_threads=4, use_tls="no")  # type: ignore[arg-type]
    assert (config.listen_port, config.task_threads, config.use_tls, config.advertise_port) == (
        0,
        4,
        False,
        0,
    )
    with pytest.raises(Exception) as caught:
        gf.ServerConfig(listen_port=70000)
    assert "server.listen_port: expected an integer in 0..65535, got 70000" in str(caught.value)
    assert "GOODDATA_FLIGHT_SERVER__LISTEN_PORT" in str(caught.value)


# -- executors built by hand, the original's way ----------------------------------------------------


class _TableTask(gf.Task):
    def run(self) -> gf.TaskResult:
        return gf.FlightDataTaskResult.for_data(pyarrow.table({"x": [1, 2]}))


def test_thread_task_executor_built_the_originals_way_is_usable_at_once() -> None:
    """ThreadTaskExecutor(metric_prefix=..., task_threads=..., result_close_threads=...,
    keep_results_for=...) works right after construction, and stop() takes the original's arguments."""
    from gooddata_flight_server.tasks.thread_task_executor import ThreadTaskExecutor

    executor = ThreadTaskExecutor(
        metric_prefix="compat_test", task_threads=2, result_close_threads=1, keep_results_for=5
    )
    try:
        task = _TableTask(b"cmd")
        executor.submit(task)
        outcome = executor.wait_for_result(task.task_id, timeout=10)
        assert outcome is not None and outcome.result is not None
        assert outcome.result.get_schema().names == ["x"]
    finally:
        executor.stop(cancel_running=True, timeout=5)


def test_thread_task_executor_is_reachable_from_the_originals_paths() -> None:
    from gooddata_flight_server.tasks.thread_task_executor import ThreadTaskExecutor

    assert issubclass(ThreadTaskExecutor, gf.TaskExecutor)


# -- discovery and CLI -----------------------------------------------------------------------------


def test_get_methods_factory_resolves_relative_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """utils.methods_discovery.get_methods_factory(name, root) finds the one decorated factory;
    a module without one raises FlightMethodsModuleError."""
    from gooddata_flight_server.exceptions import FlightMethodsModuleError
    from gooddata_flight_server.utils.methods_discovery import get_methods_factory

    package = tmp_path / "compat_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "methods.py").write_text(
        "import gooddata_flight_server as gf\n\n"
        "@gf.flight_server_methods\n"
        "def factory(ctx):\n    return gf.FlightServerMethods()\n"
    )
    (package / "empty.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    factory = get_methods_factory(".methods", root="compat_pkg")
    assert isinstance(factory(None), gf.FlightServerMethods)  # type: ignore[arg-type]
    with pytest.raises(FlightMethodsModuleError, match="no function decorated"):
        get_methods_factory("compat_pkg.empty")


def test_flight_server_methods_marks_bound_methods() -> None:
    """As in the original, the decorator wraps: bound methods can be marked, __wrapped__ is kept."""

    class Holder:
        def make(self, ctx: gf.ServerContext) -> gf.FlightServerMethods:
            return gf.FlightServerMethods()

    holder = Holder()
    factory = gf.flight_server_methods(holder.make)
    assert factory.__wrapped__ == holder.make  # type: ignore[attr-defined]
    assert isinstance(factory(None), gf.FlightServerMethods)  # type: ignore[arg-type]


def test_cli_module_runs_and_accepts_config_end() -> None:
    """``python -m gooddata_flight_server.cli`` is the CLI too, and --config-end (the original's list
    terminator) is accepted."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOODDATA_FLIGHT_")}
    result = subprocess.run(
        [sys.executable, "-m", "gooddata_flight_server.cli", "start", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--config-end" in result.stdout
    bad = subprocess.run(
        [
            *(sys.executable, "-m", "gooddata_flight_server.cli", "start"),
            *("--methods-provider", "no_such_module_xyz", "--config", "--config-end"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "no_such_module_xyz" in bad.stderr and "unrecognized" not in bad.stderr


def test_flight_data_task_result_subclassed_the_originals_way() -> None:
    """A result implementing get_schema/_get_data/_close, with super().__init__(single_use_data=...),
    hands out its data with a read lock and is closed once, after the last reader."""
    closed: list[int] = []

    class Mine(gf.FlightDataTaskResult):
        def __init__(self) -> None:
            super().__init__(single_use_data=True)

        def get_schema(self) -> pyarrow.Schema:
            return pyarrow.schema([("x", pyarrow.int64())])

        def _get_data(self) -> pyarrow.Table:
            return pyarrow.table({"x": [1]})

        def _close(self) -> None:
            closed.append(1)

    result = Mine()
    lock, data = result.acquire_data()
    assert data.num_rows == 1
    with pytest.raises(pyarrow.flight.FlightServerError):
        result.acquire_data()  # single use: consumed
    lock.release()
    result.close()
    result.close()
    assert closed == [1]


def test_a_call_finalizer_built_alone_runs_its_functions_on_call_completed() -> None:
    """As in the original package: ``CallFinalizer()`` then ``call_completed(e)`` runs what was
    registered (services' own tests end calls that way)."""
    from gooddata_flight_server.rpc.call import CallFinalizer

    seen: list[BaseException | None] = []
    finalizer = CallFinalizer()
    finalizer.register_on_end(seen.append)
    error = RuntimeError("gone")
    finalizer.call_completed(error)
    assert seen == [error]
    finalizer.call_completed(None)
    assert seen == [error], "each function runs once"
