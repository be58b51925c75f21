"""Tests for loading and validating configuration (files + environment -> ServerConfig)."""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import socket
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from gooddata_flight_server._sample_config import render as render_sample_config
from gooddata_flight_server._settings_load import load_settings, read_settings
from gooddata_flight_server.settings import (
    AuthenticationMethod,
    ConfigError,
    OtelConfig,
    OtelExporterType,
    ServerConfig,
    setting_specs,
)

SAMPLE_CONFIG = Path(__file__).parents[2] / "sample-config.toml"
FQDN = "flight-host.example.com"

# Every [server] setting as the spec names it; kept here independently of the implementation.
SERVER_SETTINGS = (
    "listen_host",
    "listen_port",
    "advertise_host",
    "advertise_port",
    "use_tls",
    "use_mtls",
    "tls_certificate",
    "tls_private_key",
    "tls_root_certificate",
    "authentication_method",
    "token_header_name",
    "token_verification",
    "task_threads",
    "task_close_threads",
    "task_result_ttl_sec",
    "task_queue_size",
    "task_result_max_count",
    "task_result_max_bytes",
    "metrics_host",
    "metrics_port",
    "health_check_host",
    "health_check_port",
    "malloc_trim_interval_sec",
    "log_event_key_name",
    "log_trace_keys",
    "otel_exporter_type",
    "otel_service_name",
    "otel_service_namespace",
    "otel_service_instance_id",
    "otel_extract_context",
    "shutdown_timeout_sec",
    "hold_thread_state",
    "call_deadline_sec",
    "task_poll_interval_sec",
)


def env(key: str) -> str:
    return f"GOODDATA_FLIGHT_SERVER__{key.upper()}"


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the developer's environment from Dynaconf and keep getfqdn off the network."""
    for name in list(os.environ):
        if name.startswith(("GOODDATA_FLIGHT_", "DYNACONF_")) or name.endswith("_FOR_DYNACONF"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(socket, "getfqdn", lambda *_: FQDN)


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """Writes a TOML file under tmp_path and returns its path."""

    def _write(text: str, name: str = "config.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write


@pytest.fixture(scope="module")
def pem_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate and its key, generated for this test run."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    base = tmp_path_factory.mktemp("pem")
    paths = {"cert": base / "server.crt", "key": base / "server.key", "ca": base / "ca.crt"}
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    ca.cert_pem.write_to_path(str(paths["ca"]))
    return paths


def problems_of(*files: Path) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        load_settings(files)
    return info.value.problems


def the_problem(*files: Path) -> str:
    problems = problems_of(*files)
    assert len(problems) == 1, problems
    return problems[0]


def warnings_of(*files: Path) -> tuple[str, ...]:
    return read_settings(files).warnings


def test_defaults() -> None:
    """With no files and no environment every setting has its documented default."""
    _, config = load_settings()
    assert config.listen_host == "127.0.0.1"
    assert config.listen_port == 17001
    assert config.advertise_host == FQDN
    assert config.advertise_port == 17001  # = listen_port, as in the original package
    assert (config.use_tls, config.use_mutual_tls, config.use_mtls) == (False, False, False)
    assert (config.tls_cert_and_key, config.tls_root_cert) == (None, None)
    assert config.authentication_method is AuthenticationMethod.NoAuth
    assert (config.token_header_name, config.token_verification) == (None, None)
    assert (config.task_threads, config.task_close_threads) == (32, 2)
    assert (config.task_result_ttl_sec, config.task_queue_size) == (60, 0)
    assert (config.metrics_host, config.metrics_port) == (None, 17101)
    assert (config.health_check_host, config.health_check_port) == (None, 8877)
    assert config.malloc_trim_interval_sec == 30
    assert config.log_event_key_name == "event"
    assert dict(config.log_trace_keys) == {}
    assert config.otel_config.exporter_type is None
    assert config.otel_config.service_name is None
    assert config.otel_config.service_namespace is None
    assert config.otel_config.service_instance_id is None
    assert config.otel_config.extract_context_from_headers is False
    assert config.otel_config.extract_context is False
    assert config.shutdown_timeout_sec == 30


def test_file_values_are_read(write) -> None:
    """Settings in a file replace the defaults."""
    path = write(
        """
        [server]
        listen_host = "0.0.0.0"
        listen_port = 18000
        advertise_host = "public.example.com"
        advertise_port = 443
        task_threads = 4
        task_result_ttl_sec = 1.5
        task_queue_size = 100
        metrics_host = "0.0.0.0"
        log_trace_keys = { trace_id = "traceId" }
        otel_exporter_type = "otlp-grpc"
        otel_service_name = "svc"
        shutdown_timeout_sec = 0
        """
    )
    _, config = load_settings([path])
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 18000)
    assert (config.advertise_host, config.advertise_port) == ("public.example.com", 443)
    assert (config.task_threads, config.task_result_ttl_sec, config.task_queue_size) == (4, 1.5, 100)
    assert config.metrics_host == "0.0.0.0"
    assert dict(config.log_trace_keys) == {"trace_id": "traceId"}
    assert config.otel_config.exporter_type is OtelExporterType.OtlpGrpc
    assert config.shutdown_timeout_sec == 0


def test_later_file_overrides_key_by_key(write) -> None:
    """A later file overrides only the keys it sets; nested tables merge, lists are replaced."""
    first = write(
        """
        [server]
        listen_host = "0.0.0.0"
        listen_port = 18000
        log_trace_keys = { trace_id = "tid", span_id = "sid" }
        [enumerated_tokens]
        tokens = ["a", "b"]
        [my_service]
        opt1 = "one"
        nested = { x = 1, y = 2 }
        """,
        "first.toml",
    )
    second = write(
        """
        [server]
        listen_port = 18001
        log_trace_keys = { span_id = "SPAN" }
        [enumerated_tokens]
        tokens = ["c"]
        [my_service.nested]
        y = 3
        """,
        "second.toml",
    )
    settings, config = load_settings([first, second])
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 18001)
    assert dict(config.log_trace_keys) == {"trace_id": "tid", "span_id": "SPAN"}
    assert list(settings.get("enumerated_tokens.tokens")) == ["c"]
    assert settings.get("my_service.opt1") == "one"
    assert (settings.get("my_service.nested.x"), settings.get("my_service.nested.y")) == (1, 3)


def test_env_overrides_file(write, monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment variable wins over the file and leaves the file's other keys alone."""
    path = write('[server]\nlisten_host = "0.0.0.0"\nlisten_port = 18000\n')
    monkeypatch.setenv(env("listen_port"), "18002")
    _, config = load_settings([path])
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 18002)


def test_env_list_replaces_enumerated_tokens(write, monkeypatch: pytest.MonkeyPatch) -> None:
    """A TOML list in the environment is parsed as a list and replaces the file's list."""
    path = write('[enumerated_tokens]\ntokens = ["from-file"]\n')
    monkeypatch.setenv("GOODDATA_FLIGHT_ENUMERATED_TOKENS__TOKENS", '["a","b"]')
    settings, _ = load_settings([path])
    assert list(settings.get("enumerated_tokens.tokens")) == ["a", "b"]


def test_user_section_is_reachable(write, monkeypatch: pytest.MonkeyPatch) -> None:
    """User sections from files and env are available through settings.get with dotted keys."""
    path = write('[my_service]\nopt1 = "value"\n')
    monkeypatch.setenv("GOODDATA_FLIGHT_MY_SERVICE__OPT2", "42")
    settings, _ = load_settings([path])
    assert settings.get("my_service.opt1") == "value"
    assert settings.get("my_service.opt2") == 42


def test_settings_are_read_afresh_on_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is cached between calls: a changed environment shows up in the next load."""
    monkeypatch.setenv(env("listen_port"), "18003")
    first = load_settings()[1].listen_port
    monkeypatch.setenv(env("listen_port"), "18004")
    assert (first, load_settings()[1].listen_port) == (18003, 18004)


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("true", True), ("TRUE", True), ("True", True), ("yes", True), ("Yes", True), ("ON", True),
        ("1", True), ("false", False), ("False", False), ("no", False), ("NO", False), ("off", False),
        ("Off", False), ("0", False),
    ],
)  # fmt: skip
def test_boolean_spellings(write, monkeypatch: pytest.MonkeyPatch, spelling: str, expected: bool) -> None:
    """Booleans accept true/false, yes/no, on/off, 1/0 in any case, from a file string and from env."""
    _, from_file = load_settings([write(f'[server]\notel_extract_context = "{spelling}"\n')])
    monkeypatch.setenv(env("otel_extract_context"), spelling)
    _, from_env = load_settings()
    assert from_file.otel_config.extract_context is expected
    assert from_env.otel_config.extract_context is expected


@pytest.mark.parametrize(
    ("literal", "expected"), [("true", True), ("false", False), ("1", True), ("0", False)]
)
def test_boolean_toml_values(write, literal: str, expected: bool) -> None:
    """Real TOML booleans and the integers 0/1 are accepted as booleans."""
    _, config = load_settings([write(f"[server]\notel_extract_context = {literal}\n")])
    assert config.otel_config.extract_context is expected


def test_invalid_boolean(write) -> None:
    """A word that is not a boolean is a problem naming the setting and its env variable."""
    problem = the_problem(write('[server]\nuse_tls = "maybe"\n'))
    assert problem.startswith("server.use_tls: expected a boolean")
    assert "'maybe'" in problem
    assert problem.endswith(f"(env {env('use_tls')})")


def test_listen_port_zero_means_any_free_port(write) -> None:
    """listen_port 0 is valid (the OS picks a free port)."""
    assert load_settings([write("[server]\nlisten_port = 0\n")])[1].listen_port == 0


def test_integer_given_as_string(write) -> None:
    """An integer written as a string is accepted."""
    assert load_settings([write('[server]\nlisten_port = "17002"\n')])[1].listen_port == 17002


@pytest.mark.parametrize("value", ["65536", "-1", "abc", "1.5", "true"])
def test_invalid_listen_port_from_env(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Out-of-range, negative and non-integer ports are rejected with the env variable named."""
    monkeypatch.setenv(env("listen_port"), value)
    problem = the_problem()
    assert problem.startswith("server.listen_port: expected an integer in 0..65535, got ")
    assert problem.endswith(f"(env {env('listen_port')})")


def test_invalid_listen_port_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """The message shows the offending value as written."""
    monkeypatch.setenv(env("listen_port"), "abc")
    assert the_problem() == (
        "server.listen_port: expected an integer in 0..65535, got 'abc' "
        "(env GOODDATA_FLIGHT_SERVER__LISTEN_PORT)"
    )


@pytest.mark.parametrize("value", ["65536", "-1"])
def test_invalid_listen_port_in_file(write, value: str) -> None:
    """Out-of-range ports in a file are rejected too."""
    problem = the_problem(write(f"[server]\nlisten_port = {value}\n"))
    assert problem.startswith(f"server.listen_port: expected an integer in 0..65535, got {value} ")


def test_every_problem_is_reported_at_once(write, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several invalid settings from files and env all appear in one ConfigError."""
    path = write(
        """
        [server]
        listen_port = 70000
        task_threads = 0
        task_result_ttl_sec = -5
        malloc_trim_interval_sec = "often"
        authentication_method = "password"
        use_tls = true
        """
    )
    monkeypatch.setenv(env("metrics_port"), "abc")
    monkeypatch.setenv(env("shutdown_timeout_sec"), "-1")
    monkeypatch.setenv(env("task_queue_size"), "-3")
    problems = problems_of(path)
    bad = [
        "listen_port",
        "task_threads",
        "task_result_ttl_sec",
        "malloc_trim_interval_sec",
        "authentication_method",
        "tls_certificate",
        "tls_private_key",
        "metrics_port",
        "shutdown_timeout_sec",
        "task_queue_size",
    ]
    for key in bad:
        assert any(p.startswith(f"server.{key}: ") and p.endswith(f"(env {env(key)})") for p in problems), key
    assert len(problems) == len(bad)
    assert all("\n" not in problem for problem in problems)
    text = str(ConfigError(problems))
    assert all(problem in text for problem in problems)


def test_tls_from_at_path_in_file(write, pem_files: dict[str, Path]) -> None:
    """'@path' in a file reads the PEM files as bytes."""
    path = write(
        f"""
        [server]
        use_tls = true
        use_mtls = true
        tls_certificate = "@{pem_files["cert"]}"
        tls_private_key = "@{pem_files["key"]}"
        tls_root_certificate = "@{pem_files["ca"]}"
        """
    )
    _, config = load_settings([path])
    assert config.tls_cert_and_key == (pem_files["cert"].read_bytes(), pem_files["key"].read_bytes())
    assert config.tls_root_cert == pem_files["ca"].read_bytes()


def test_tls_from_at_path_in_env(monkeypatch: pytest.MonkeyPatch, pem_files: dict[str, Path]) -> None:
    """'@path' in an environment variable reaches the reader intact (Dynaconf does not eat the '@')."""
    monkeypatch.setenv(env("use_tls"), "yes")
    monkeypatch.setenv(env("tls_certificate"), f"@{pem_files['cert']}")
    monkeypatch.setenv(env("tls_private_key"), f"@{pem_files['key']}")
    _, config = load_settings()
    assert config.use_tls is True
    assert config.tls_cert_and_key == (pem_files["cert"].read_bytes(), pem_files["key"].read_bytes())


def test_tls_inline_pem_from_env(monkeypatch: pytest.MonkeyPatch, pem_files: dict[str, Path]) -> None:
    """Inline PEM text is accepted and stored as bytes."""
    monkeypatch.setenv(env("use_tls"), "true")
    monkeypatch.setenv(env("tls_certificate"), pem_files["cert"].read_text())
    monkeypatch.setenv(env("tls_private_key"), pem_files["key"].read_text())
    _, config = load_settings()
    assert config.tls_cert_and_key == (pem_files["cert"].read_bytes(), pem_files["key"].read_bytes())


def test_tls_inline_values_are_not_checked_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inline certificate values that are not PEM load (as in the original package, whose own test
    uses such values); TLS itself refuses them when the server starts (exit code 3, see the CLI tests)."""
    monkeypatch.setenv(env("use_tls"), "true")
    monkeypatch.setenv(env("tls_certificate"), "inlined cert")
    monkeypatch.setenv(env("tls_private_key"), "/etc/server.key")  # a forgotten '@'
    _, config = load_settings()
    assert config.tls_cert_and_key == (b"inlined cert", b"/etc/server.key")


def test_missing_tls_file(write, tmp_path: Path, pem_files: dict[str, Path]) -> None:
    """A missing TLS file is a problem naming the setting and the file."""
    missing = tmp_path / "nope.pem"
    cert = pem_files["cert"]
    path = write(f'[server]\nuse_tls = true\ntls_certificate = "@{cert}"\ntls_private_key = "@{missing}"\n')
    assert (
        the_problem(path)
        == f"server.tls_private_key: '{missing}' does not exist (env {env('tls_private_key')})"
    )


def test_tls_file_that_is_a_directory(write, tmp_path: Path, pem_files: dict[str, Path]) -> None:
    """A directory given as a TLS file is a problem, not a crash."""
    path = write(
        f"""
        [server]
        use_tls = true
        use_mtls = true
        tls_certificate = "@{pem_files["cert"]}"
        tls_private_key = "@{pem_files["key"]}"
        tls_root_certificate = "@{tmp_path}"
        """
    )
    assert the_problem(path).startswith(f"server.tls_root_certificate: '{tmp_path}' is a directory")


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_tls_file_must_be_a_regular_file(
    write, tmp_path: Path, pem_files: dict[str, Path], kind: str
) -> None:
    """A FIFO (which would block the read) or a device such as /dev/zero (which never ends) is a
    one-line problem at once, not a hang or an endless read."""
    if kind == "fifo":
        bad = tmp_path / "cert.fifo"
        os.mkfifo(bad)
    else:
        bad = Path("/dev/zero")
    path = write(
        f'[server]\nuse_tls = true\ntls_certificate = "@{bad}"\ntls_private_key = "@{pem_files["key"]}"\n'
    )
    problem = the_problem(path)
    assert problem.startswith(f"server.tls_certificate: '{bad}' is a ")
    assert "expected a regular file" in problem


def test_oversized_tls_file(write, tmp_path: Path, pem_files: dict[str, Path]) -> None:
    """A TLS file larger than the limit is refused without reading it all."""
    big = tmp_path / "big.pem"
    with open(big, "wb") as f:
        f.truncate(64 * 1024 * 1024)  # sparse: no disk used
    path = write(
        f'[server]\nuse_tls = true\ntls_certificate = "@{big}"\ntls_private_key = "@{pem_files["key"]}"\n'
    )
    assert "is too large" in the_problem(path)


def test_tls_settings_are_ignored_when_tls_is_off(write, tmp_path: Path) -> None:
    """Stale or missing certificate settings in a config that does not use TLS are not read."""
    missing = tmp_path / "gone.pem"
    path = write(
        f"""
        [server]
        tls_certificate = "@{missing}"
        tls_private_key = "not even PEM"
        use_mtls = false
        tls_root_certificate = "@{missing}"
        """
    )
    _, config = load_settings([path])
    assert (config.tls_cert_and_key, config.tls_root_cert) == (None, None)


def test_use_tls_without_certificate_and_key(write) -> None:
    """use_tls requires both the certificate and the private key."""
    problems = problems_of(write("[server]\nuse_tls = true\n"))
    assert problems == (
        f"server.tls_certificate: required when use_tls is true (env {env('tls_certificate')})",
        f"server.tls_private_key: required when use_tls is true (env {env('tls_private_key')})",
    )


def test_use_tls_with_only_the_certificate(write, pem_files: dict[str, Path]) -> None:
    """The missing half of the pair is named."""
    path = write(f'[server]\nuse_tls = true\ntls_certificate = "@{pem_files["cert"]}"\n')
    assert the_problem(path) == (
        f"server.tls_private_key: required when use_tls is true (env {env('tls_private_key')})"
    )


def test_use_mtls_without_root_certificate(write, pem_files: dict[str, Path]) -> None:
    """use_mtls requires tls_root_certificate."""
    path = write(
        f"""
        [server]
        use_tls = true
        use_mtls = true
        tls_certificate = "@{pem_files["cert"]}"
        tls_private_key = "@{pem_files["key"]}"
        """
    )
    assert the_problem(path).startswith("server.tls_root_certificate: required when use_mtls is true")


def test_use_mtls_without_use_tls_is_a_warning(write, pem_files: dict[str, Path]) -> None:
    """use_mtls without use_tls loads (the original accepts it) with a warning: it has no effect."""
    path = write(f'[server]\nuse_mtls = true\ntls_root_certificate = "@{pem_files["ca"]}"\n')
    loaded = read_settings([path])
    assert loaded.config.use_mutual_tls is True and loaded.config.tls_root_cert is None
    assert loaded.warnings == (
        f"server.use_mtls: has no effect without use_tls = true: client certificates are not checked "
        f"(env {env('use_mtls')})",
    )


def test_token_authentication_defaults_to_enumerated_tokens(write) -> None:
    """With token authentication and no strategy named, the built-in strategy is used."""
    _, config = load_settings([write('[server]\nauthentication_method = "Token"\n')])
    assert config.authentication_method is AuthenticationMethod.Token
    assert config.token_verification == "EnumeratedTokenVerification"


def test_otel_exporter_without_service_name_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exporter without otel_service_name loads (the original accepts it) with a warning."""
    monkeypatch.setenv(env("otel_exporter_type"), "zipkin")
    loaded = read_settings()
    assert loaded.config.otel_config.exporter_type is OtelExporterType.Zipkin
    assert loaded.warnings == (
        "server.otel_service_name: not set although otel_exporter_type is zipkin; spans report the "
        f"service as gooddata-flight-server (env {env('otel_service_name')})",
    )


def test_bad_otel_exporter_name(write) -> None:
    """An unknown exporter name lists the allowed ones."""
    problem = the_problem(write('[server]\notel_exporter_type = "jaeger"\notel_service_name = "s"\n'))
    assert problem.startswith("server.otel_exporter_type: expected one of none, zipkin, otlp-http")
    assert "'jaeger'" in problem


@pytest.mark.parametrize("value", ["none", "None", ""])
def test_otel_exporter_none_spellings(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """'none' in any case and an empty value both mean no exporter."""
    monkeypatch.setenv(env("otel_exporter_type"), value)
    assert load_settings()[1].otel_config.exporter_type is None


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ('{ span_id = "" }', "value of span_id must be a non-empty string"),
        ("{ span_id = 1 }", "value of span_id must be a non-empty string"),
        ('"trace_id"', "expected a table"),
    ],
)
def test_bad_log_trace_keys(write, table: str, fragment: str) -> None:
    """log_trace_keys only renames trace_id, span_id, parent_span_id to non-empty names."""
    problem = the_problem(write(f"[server]\nlog_trace_keys = {table}\n"))
    assert problem.startswith("server.log_trace_keys: ")
    assert fragment in problem


def test_log_trace_keys_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """log_trace_keys can be set per key through nested env variables (upper-case keys)."""
    monkeypatch.setenv("GOODDATA_FLIGHT_SERVER__LOG_TRACE_KEYS__PARENT_SPAN_ID", "parent")
    assert dict(load_settings()[1].log_trace_keys) == {"parent_span_id": "parent"}


def test_unknown_log_trace_keys_are_a_warning(write) -> None:
    """A key log_trace_keys does not know loads (the original accepts it) with a warning."""
    loaded = read_settings([write('[server]\nlog_trace_keys = { trace = "t" }\n')])
    assert len(loaded.warnings) == 1
    assert loaded.warnings[0].startswith("server.log_trace_keys: unknown keys trace are ignored")


def test_duplicate_log_trace_key_targets_are_a_warning(write) -> None:
    """Two trace keys renamed to one name load (the original's own sample config does it) with a warning."""
    loaded = read_settings([write('[server]\nlog_trace_keys = { trace_id = "x", span_id = "x" }\n')])
    assert dict(loaded.config.log_trace_keys) == {"trace_id": "x", "span_id": "x"}
    assert len(loaded.warnings) == 1
    assert loaded.warnings[0].startswith("server.log_trace_keys: several trace keys are renamed to x")


def test_unknown_server_key_is_a_warning_with_a_hint(write, monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt [server] key, from a file or env, is a warning with a 'did you mean' hint; the
    configuration loads (the original package ignores unknown keys)."""
    monkeypatch.setenv("GOODDATA_FLIGHT_SERVER__TASK_THRAEDS", "4")
    loaded = read_settings([write("[server]\nlisten_prot = 18000\n")])
    assert loaded.config.listen_port == 17001
    assert set(loaded.warnings) == {
        "server.listen_prot: unknown setting, ignored, did you mean 'listen_port'? "
        "(env GOODDATA_FLIGHT_SERVER__LISTEN_PROT)",
        "server.task_thraeds: unknown setting, ignored, did you mean 'task_threads'? "
        "(env GOODDATA_FLIGHT_SERVER__TASK_THRAEDS)",
    }


def test_empty_env_value_clears_file_value(write, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty environment value means 'not set', so the default applies again."""
    path = write('[server]\nmetrics_host = "0.0.0.0"\n')
    monkeypatch.setenv(env("metrics_host"), "")
    assert load_settings([path])[1].metrics_host is None


def test_missing_and_directory_config_files(tmp_path: Path) -> None:
    """A config file that does not exist or is a directory is a problem, one per file."""
    missing = tmp_path / "missing.toml"
    assert problems_of(missing, tmp_path) == (
        f"config file '{missing}' does not exist",
        f"config file '{tmp_path}' is a directory, expected a regular file",
    )


def test_config_file_must_be_a_regular_file(tmp_path: Path) -> None:
    """A FIFO or a device given as a config file is a one-line problem, not a hang."""
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    problems = problems_of(fifo, Path("/dev/zero"))
    assert problems == (
        f"config file '{fifo}' is a named pipe (FIFO), expected a regular file",
        "config file '/dev/zero' is a device, expected a regular file",
    )


def test_yaml_and_json_config_files(write) -> None:
    """YAML and JSON files are read as Dynaconf reads them for the original; the formats mix."""
    yaml_file = write("server:\n  listen_port: 18010\nmy_service:\n  opt1: from-yaml\n", "a.yaml")
    json_file = write('{"server": {"task_threads": 3}, "my_service": {"opt2": 2}}', "b.json")
    settings, config = load_settings([yaml_file, json_file])
    assert (config.listen_port, config.task_threads) == (18010, 3)
    assert (settings.get("my_service.opt1"), settings.get("my_service.opt2")) == ("from-yaml", 2)


def test_unsupported_or_broken_config_formats(write) -> None:
    """Formats the server does not read, and broken YAML or JSON, are one-line problems naming the file."""
    ini, yaml_file = write("[server]\n", "a.ini"), write("server: [unclosed\n", "b.yml")
    json_file = write("{", "c.json")
    problems = problems_of(ini, yaml_file, json_file)
    assert problems[0] == f"config file '{ini}': .ini files are not supported; use TOML, YAML or JSON"
    assert problems[1].startswith(f"config file '{yaml_file}': invalid YAML: ")
    assert problems[2].startswith(f"config file '{json_file}': invalid JSON: ")
    assert all("\n" not in problem for problem in problems)


def test_toml_syntax_error_names_the_file(write) -> None:
    """A TOML syntax error is a ConfigError naming the file."""
    path = write("[server\nlisten_port = 1\n", "broken.toml")
    assert the_problem(path).startswith(f"config file '{path}': invalid TOML")


def test_sections_may_have_names_dynaconf_uses_for_its_options(
    write, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[redis], [env] or [secrets] are plain sections of settings (Dynaconf has options of those
    names, which must not be reconfigured by them); the environment still wins over them."""
    path = write('[redis]\nhost = "redis.local"\nport = 6379\n[env]\nname = "prod"\n[secrets]\nx = 1\n')
    monkeypatch.setenv("GOODDATA_FLIGHT_REDIS__HOST", "redis.env")
    settings, _ = load_settings([path])
    assert (settings.get("redis.host"), settings.get("redis.port")) == ("redis.env", 6379)
    assert (settings.get("env.name"), settings.get("secrets.x")) == ("prod", 1)


def test_top_level_key_naming_a_dynaconf_option_is_refused(write) -> None:
    """A root key naming one of Dynaconf's own options is refused instead of reconfiguring Dynaconf."""
    problem = the_problem(write("dynaconf_merge = true\n"))
    assert "top-level key 'dynaconf_merge' is one of Dynaconf's own options" in problem


def test_invalid_dynaconf_token_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Dynaconf value token that fails (here @int) becomes a ConfigError, not a stray exception."""
    monkeypatch.setenv("GOODDATA_FLIGHT_MY_SERVICE__OPT", "@int abc")
    assert the_problem().startswith("cannot load settings")


def test_single_path_is_accepted(write) -> None:
    """A lone path instead of a sequence is treated as one file, not as a string of characters."""
    path = write("[server]\nlisten_port = 18005\n")
    assert load_settings(path)[1].listen_port == 18005  # type: ignore[arg-type]


def test_without_tls_masks_material(write, pem_files: dict[str, Path]) -> None:
    """without_tls() keeps the rest of the config but no certificate or key bytes."""
    path = write(
        f"""
        [server]
        use_tls = true
        use_mtls = true
        tls_certificate = "@{pem_files["cert"]}"
        tls_private_key = "@{pem_files["key"]}"
        tls_root_certificate = "@{pem_files["ca"]}"
        """
    )
    _, config = load_settings([path])
    masked = config.without_tls()
    assert "BEGIN" not in repr(dataclasses.asdict(masked))
    assert masked.tls_cert_and_key is not None and masked.tls_root_cert is not None
    for field in dataclasses.fields(config):
        if field.name not in ("tls_cert_and_key", "tls_root_cert"):
            assert getattr(masked, field.name) == getattr(config, field.name), field.name
    assert "BEGIN" not in repr(config)


def test_server_config_is_immutable() -> None:
    """ServerConfig is frozen, hashable and copyable, and its log_trace_keys cannot be changed."""
    _, config = load_settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.listen_port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.log_trace_keys["trace_id"] = "x"  # type: ignore[index]
    assert copy.deepcopy(config) == config
    assert hash(config) == hash(dataclasses.replace(config))


def test_sample_config_loads_to_defaults() -> None:
    """sample-config.toml is valid and, being all comments, changes nothing."""
    _, from_sample = load_settings([SAMPLE_CONFIG])
    _, defaults = load_settings()
    assert from_sample == defaults


def test_sample_config_documents_every_setting() -> None:
    """Each setting appears in sample-config.toml as a commented example with its env variable."""
    text = SAMPLE_CONFIG.read_text(encoding="utf-8")
    for key in SERVER_SETTINGS:
        assert re.search(rf"^# {key} = ", text, re.MULTILINE), key
        assert f"# env: {env(key)}" in text, key
    assert "# env: GOODDATA_FLIGHT_ENUMERATED_TOKENS__TOKENS=" in text
    assert re.search(r"^# tokens = \[", text, re.MULTILINE)


def test_sample_config_examples_are_valid_toml() -> None:
    """Every commented example line is valid TOML once uncommented."""
    tomllib = pytest.importorskip("tomllib")
    for line in SAMPLE_CONFIG.read_text(encoding="utf-8").splitlines():
        if re.match(r"^# [a-z_]+ = ", line):
            tomllib.loads(line[2:])


def test_server_config_fields_are_all_settings() -> None:
    """Every ServerConfig/OtelConfig setting is one of the documented settings, and vice versa."""
    keys = [key for cls in (ServerConfig, OtelConfig) for _, spec in setting_specs(cls) for key in spec.keys]
    assert sorted(keys) == sorted(SERVER_SETTINGS)


def test_sample_config_is_generated_from_the_settings() -> None:
    """sample-config.toml is what the settings' own declarations render (`make sample-config`)."""
    assert SAMPLE_CONFIG.read_text(encoding="utf-8") == render_sample_config()
