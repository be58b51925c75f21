"""Token authentication through real servers and clients, with the built-in enumerated tokens."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow
import pyarrow.flight as flight
import pytest

import gooddata_flight_server as gf
from gooddata_flight_server.settings import ConfigError
from gooddata_flight_server.testing import running_server
from tests.conftest import EXAMPLES, LogFile, run_cli

TOKEN = "tok-Zq8fW3-enumerated-secret"
OTHER = "tok-second-client-secret"
WRONG = "tok-guessed-wrong-value"
TOKENS_ENV = "GOODDATA_FLIGHT_ENUMERATED_TOKENS__TOKENS"
SETTINGS: dict[str, dict[str, Any]] = {
    "server": {"authentication_method": "token"},
    "enumerated_tokens": {"tokens": [TOKEN, OTHER]},
}


class Methods(gf.FlightServerMethods):
    """Lists one flight, answers every RPC, and tells a caller its token_data."""

    def __init__(self) -> None:
        self.calls = 0

    def list_flights(self, context: flight.ServerCallContext, criteria: bytes) -> Iterator[flight.FlightInfo]:
        self.calls += 1
        descriptor = flight.FlightDescriptor.for_path("listed")
        yield flight.FlightInfo(pyarrow.schema([("a", pyarrow.int64())]), descriptor, [], -1, -1)

    def do_action(self, context: flight.ServerCallContext, action: flight.Action) -> Iterator[bytes]:
        self.calls += 1
        auth = context.get_middleware("auth_token")
        yield orjson.dumps({"has_auth": auth is not None, "token_data": getattr(auth, "token_data", None)})

    def list_actions(self, context: flight.ServerCallContext) -> list[tuple[str, str]]:
        self.calls += 1
        return [("whoami", "tells the caller its token data")]


def bearer(token: str) -> flight.FlightCallOptions:
    return flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])


def whoami(client: flight.FlightClient, options: flight.FlightCallOptions | None = None) -> Any:
    (result,) = client.do_action(flight.Action("whoami", b""), options)
    return orjson.loads(result.body.to_pybytes())


def test_seed_readme_client_call_with_a_token() -> None:
    """The README's example_call_using_tokens shape works against enumerated tokens (either token)."""
    methods = Methods()
    with running_server(methods, SETTINGS) as server:
        for token in (TOKEN, OTHER):
            opts = pyarrow.flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])
            client = pyarrow.flight.FlightClient(server.location)
            flights = list(client.list_flights(b"", opts))
            client.close()
            assert [f.descriptor.path for f in flights] == [[b"listed"]]


def test_handlers_see_the_auth_middleware() -> None:
    """Handlers reach the 'auth_token' middleware; enumerated tokens give token_data None."""
    with running_server(Methods(), SETTINGS) as server, flight.FlightClient(server.location) as client:
        assert whoami(client, bearer(TOKEN)) == {"has_auth": True, "token_data": None}


def test_bearer_scheme_in_any_letter_case() -> None:
    """RFC 7235: the scheme is case-insensitive, so 'bearer <token>' and 'BEARER <token>' work too."""
    with running_server(Methods(), SETTINGS) as server, flight.FlightClient(server.location) as client:
        for scheme in ("bearer", "BEARER"):
            options = flight.FlightCallOptions(headers=[(b"authorization", f"{scheme} {TOKEN}".encode())])
            assert whoami(client, options)["has_auth"] is True


def test_without_token_auth_there_is_no_auth_middleware() -> None:
    """With authentication_method = none calls need no token and no 'auth_token' middleware exists."""
    with running_server(Methods()) as server, flight.FlightClient(server.location) as client:
        assert whoami(client) == {"has_auth": False, "token_data": None}


@pytest.mark.parametrize(
    ("headers", "reason", "message"),
    [
        ([], "missing_token", "authentication required: send the token in the header 'authorization: Bearer"),
        (
            [(b"authorization", f"Bearer {TOKEN}".encode()), (b"authorization", f"Bearer {OTHER}".encode())],
            "duplicate_header",
            "the header 'authorization' was sent more than once",
        ),
        (
            [(b"authorization", f"Basic {TOKEN}".encode())],
            "wrong_scheme",
            "must have the form 'Bearer <token>'",
        ),
        ([(b"authorization", TOKEN.encode())], "wrong_scheme", "must have the form 'Bearer <token>'"),
        ([(b"authorization", b"Bearer ")], "empty_token", "the token in the header 'authorization' is empty"),
        ([(b"authorization", f"Bearer {WRONG}".encode())], "invalid_token", "the token is not valid"),
    ],
)
def test_each_rejection_reason_reaches_the_client_and_the_log(
    log_file: LogFile, headers: list[tuple[bytes, bytes]], reason: str, message: str
) -> None:
    """Each way to fail is UNAUTHENTICATED saying which, logged as auth_failed without any token."""
    methods = Methods()
    with running_server(methods, SETTINGS, logging_config=log_file.ini) as server:
        with flight.FlightClient(server.location) as client:
            with pytest.raises(flight.FlightUnauthenticatedError) as caught:
                whoami(client, flight.FlightCallOptions(headers=headers))
    assert message in str(caught.value)
    assert methods.calls == 0
    (event,) = log_file.events("auth_failed")
    assert (event["reason"], event["rpc"], event["level"]) == (reason, "DO_ACTION", "warning")
    log_text = log_file.path.read_text()
    for secret in (TOKEN, OTHER, WRONG):
        assert secret not in str(caught.value)
        assert secret not in log_text


_RPCS: dict[str, Callable[[flight.FlightClient, flight.FlightCallOptions], Any]] = {
    "list_flights": lambda c, o: list(c.list_flights(b"", o)),
    "get_flight_info": lambda c, o: c.get_flight_info(flight.FlightDescriptor.for_path("x"), o),
    "get_schema": lambda c, o: c.get_schema(flight.FlightDescriptor.for_path("x"), o),
    "do_get": lambda c, o: c.do_get(flight.Ticket(b"x"), o).read_all(),
    "do_put": lambda c, o: c.do_put(flight.FlightDescriptor.for_path("x"), pyarrow.schema([]), o)[0].close(),
    "do_exchange": lambda c, o: c.do_exchange(flight.FlightDescriptor.for_path("x"), o)[1].read_all(),
    "list_actions": lambda c, o: c.list_actions(o),
    "do_action": lambda c, o: list(c.do_action(flight.Action("whoami", b""), o)),
}


def test_every_rpc_requires_the_token() -> None:
    """All eight Flight RPCs are refused without a token, and a valid token gets past auth on each."""
    with running_server(Methods(), SETTINGS) as server, flight.FlightClient(server.location) as client:
        for name, call in _RPCS.items():
            # pyarrow's client turns a failed GetSchema into a plain OSError; the status text survives
            expected = OSError if name == "get_schema" else flight.FlightUnauthenticatedError
            with pytest.raises(expected, match="authentication required"):
                call(client, flight.FlightCallOptions())
            try:
                call(client, bearer(TOKEN))
            except (NotImplementedError, flight.FlightError, OSError, pyarrow.ArrowException) as e:
                # Methods does not implement every RPC: past auth, that is the answer to expect
                assert "authentication required" not in str(e), name
                assert "token" not in str(e).lower(), name


def test_custom_header_carries_the_whole_token() -> None:
    """token_header_name makes the whole header value the token; Authorization is then ignored."""
    settings = {**SETTINGS, "server": {"authentication_method": "token", "token_header_name": "X-Api-Key"}}
    with running_server(Methods(), settings) as server, flight.FlightClient(server.location) as client:
        options = flight.FlightCallOptions(headers=[(b"x-api-key", f" {TOKEN} ".encode())])
        assert whoami(client, options)["has_auth"] is True
        with pytest.raises(flight.FlightUnauthenticatedError, match="header 'x-api-key: <token>'"):
            whoami(client, bearer(TOKEN))


def test_tokens_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """GOODDATA_FLIGHT_ENUMERATED_TOKENS__TOKENS='["a","b"]' configures the tokens, replacing the file's."""
    monkeypatch.setenv(TOKENS_ENV, f'["{OTHER}", "env-only-token"]')
    with running_server(Methods(), SETTINGS) as server, flight.FlightClient(server.location) as client:
        assert whoami(client, bearer("env-only-token"))["has_auth"] is True
        with pytest.raises(flight.FlightUnauthenticatedError):
            whoami(client, bearer(TOKEN))


def test_token_auth_without_tokens_fails_startup() -> None:
    """Token auth with no tokens fails startup with a message naming the env variable and section."""
    with pytest.raises(ConfigError) as caught:
        with running_server(Methods(), {"server": {"authentication_method": "token"}}):
            pass  # pragma: no cover - startup fails
    assert TOKENS_ENV in str(caught.value)
    assert "[enumerated_tokens]" in str(caught.value)


@pytest.mark.parametrize("tokens", [None, "[1, 2]", '"not-a-list"'])
def test_cli_exits_2_before_binding_when_tokens_are_bad(tmp_path: Path, tokens: str | None) -> None:
    """From the CLI, token auth without tokens (or with tokens of the wrong type) is a configuration
    error: exit 2 and one line saying how, before anything binds. The port given is held by the
    test, so a server that bound first would fail with exit 3 instead."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        env = {
            "GOODDATA_FLIGHT_SERVER__AUTHENTICATION_METHOD": "token",
            "GOODDATA_FLIGHT_SERVER__LISTEN_PORT": str(held.getsockname()[1]),
            "GOODDATA_FLIGHT_SERVER__ADVERTISE_HOST": "127.0.0.1",
        }
        if tokens is not None:
            env[TOKENS_ENV] = tokens
        log_ini = LogFile(tmp_path).ini  # keep the JSON log lines out of stderr
        result = run_cli(
            ["start", "--methods-provider", "my_service.main", "--logging-config", str(log_ini)],
            EXAMPLES,
            env,
        )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "gooddata-flight-server: error: invalid configuration: enumerated_tokens.tokens"
    )
    assert "1, 2" not in lines[0]  # token values are never shown
