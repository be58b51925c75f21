"""Custom token verification strategies loaded by the server, through real servers and clients."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow
import pyarrow.flight as flight
import pytest

import gooddata_flight_server as gf
from gooddata_flight_server.auth.strategy import AuthSetupError
from gooddata_flight_server.loader import LoadError
from gooddata_flight_server.testing import running_server
from tests.conftest import LogFile

# The seed README's custom strategy, verbatim.
SEED_STRATEGY = """
import gooddata_flight_server as gf
import pyarrow.flight
from typing import Any


class MyCustomTokenVerification(gf.TokenVerificationStrategy):
    def verify(self, call_info: pyarrow.flight.CallInfo, token: str) -> Any:
        # implement your arbitrary logic here;
        #
        # see method and class documentation to learn more
        raise NotImplementedError

    @classmethod
    def create(cls, ctx: gf.ServerContext) -> "TokenVerificationStrategy":
        # code has chance to read any necessary settings from `ctx.settings`
        # property and then use those values to construct the class
        #
        # see method and class documentation to learn more
        return MyCustomTokenVerification()
"""

# A strategy reading its users from its own settings section; readers may not call DoAction "write".
ROLES_STRATEGY = """
import pyarrow.flight
import gooddata_flight_server as gf

created = []


class RoleTokens(gf.TokenVerificationStrategy):
    def __init__(self, users):
        self._users = users

    def verify(self, call_info, token):
        user = self._users.get(token)
        if user is None:
            raise pyarrow.flight.FlightUnauthenticatedError("unknown token")
        if token == "explode-token":
            raise LookupError(f"user store failed for {token}")
        if user["role"] == "reader" and call_info.method == pyarrow.flight.FlightMethod.DO_PUT:
            raise pyarrow.flight.FlightUnauthorizedError("readers may not upload")
        return user

    @classmethod
    def create(cls, ctx):
        created.append(ctx)
        return cls(dict(ctx.settings.get("role_tokens.users")))
"""

ROLE_SETTINGS: dict[str, dict[str, Any]] = {
    "role_tokens": {
        "users": {
            "admin-token": {"name": "ann", "role": "admin"},
            "reader-token": {"name": "rob", "role": "reader"},
            "explode-token": {"name": "eve", "role": "admin"},
        }
    }
}


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], str]]:
    """Writes importable modules under tmp_path; sys.path and sys.modules are restored afterwards."""
    root = tmp_path / "user_code"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    tops: set[str] = set()

    def _write(name: str, source: str) -> str:
        top = name.split(".", maxsplit=1)[0]
        for loaded in [m for m in sys.modules if m.split(".")[0] == top]:
            monkeypatch.delitem(sys.modules, loaded)  # e.g. examples/my_service imported by another test
        tops.add(top)
        path = root.joinpath(*name.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        for package in path.relative_to(root).parents:
            if package != Path("."):
                (root / package / "__init__.py").touch()
        path.write_text(textwrap.dedent(source))
        return name

    yield _write
    for loaded in [m for m in sys.modules if m.split(".")[0] in tops]:
        del sys.modules[loaded]


class Methods(gf.FlightServerMethods):
    """DoAction answers the caller's token_data; DoPut accepts uploads."""

    def do_action(self, context: flight.ServerCallContext, action: flight.Action) -> Iterator[bytes]:
        yield orjson.dumps(context.get_middleware("auth_token").token_data)

    def do_put(
        self,
        context: flight.ServerCallContext,
        descriptor: flight.FlightDescriptor,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        reader.read_all()


def token_settings(spec: str, **extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"server": {"authentication_method": "token", "token_verification": spec}, **extra}


def call_as(client: flight.FlightClient, token: str) -> Any:
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])
    (result,) = client.do_action(flight.Action("whoami", b""), options)
    return orjson.loads(result.body.to_pybytes())


def test_seed_readme_strategy_runs_unchanged(
    user_module: Callable[[str, str], str], log_file: LogFile
) -> None:
    """The README's module is loaded by module name; its unimplemented verify fails calls closed."""
    name = user_module("my_service.auth.custom_token_verification", SEED_STRATEGY)
    with running_server(Methods(), token_settings(name), logging_config=log_file.ini) as server:
        with flight.FlightClient(server.location) as client:
            with pytest.raises(flight.FlightInternalError, match="Token verification failed on the server"):
                call_as(client, "some-token-value")
    (enabled,) = log_file.events("token_auth_enabled")
    assert enabled["strategy"] == f"{name}:MyCustomTokenVerification"
    (failed,) = log_file.events("auth_failed")
    assert (failed["reason"], failed["error_type"]) == ("strategy_error", "NotImplementedError")


VERIFY_ONLY_STRATEGY = """
import pyarrow.flight
import gooddata_flight_server as gf


class HeaderNames(gf.TokenVerificationStrategy):
    def verify(self, call_info, token):
        if not token.startswith("user-"):
            raise pyarrow.flight.FlightUnauthenticatedError("not a user token")
        return {"user": token[5:]}
"""


def test_strategy_implementing_only_verify_loads_and_works(user_module: Callable[[str, str], str]) -> None:
    """As in the original, create() defaults to cls(): a strategy with only verify() works."""
    name = user_module("acme_auth.header_names", VERIFY_ONLY_STRATEGY)
    with running_server(Methods(), token_settings(name)) as server:
        with flight.FlightClient(server.location) as client:
            assert call_as(client, "user-ann") == {"user": "ann"}
            with pytest.raises(flight.FlightUnauthenticatedError, match="not a user token"):
                call_as(client, "robot-1")


@pytest.mark.parametrize("suffix", ["", ":RoleTokens"])
def test_custom_strategy_token_data_reaches_the_handler(
    user_module: Callable[[str, str], str], suffix: str
) -> None:
    """Both spellings load the strategy; create() runs once; verify's result is the handler's token_data."""
    name = user_module("acme_auth.roles", ROLES_STRATEGY)
    with running_server(Methods(), token_settings(name + suffix, **ROLE_SETTINGS)) as server:
        with flight.FlightClient(server.location) as client:
            assert call_as(client, "admin-token") == {"name": "ann", "role": "admin"}
            assert call_as(client, "reader-token") == {"name": "rob", "role": "reader"}
            with pytest.raises(flight.FlightUnauthenticatedError, match="unknown token"):
                call_as(client, "nobody-token")
    (ctx,) = sys.modules[name].created
    assert ctx.location == server.location


def test_strategy_may_forbid_a_valid_token(user_module: Callable[[str, str], str], log_file: LogFile) -> None:
    """A strategy's FlightUnauthorizedError reaches the client for the RPC it forbids, and is logged."""
    name = user_module("acme_auth.roles", ROLES_STRATEGY)
    table = flight.FlightDescriptor.for_path("upload")
    settings = token_settings(name, **ROLE_SETTINGS)
    with running_server(Methods(), settings, logging_config=log_file.ini) as server:
        with flight.FlightClient(server.location) as client:
            for token, allowed in (("admin-token", True), ("reader-token", False)):
                options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])
                data = pyarrow.table({"a": [1]})
                if allowed:
                    writer, _ = client.do_put(table, data.schema, options)
                    writer.write_table(data)
                    writer.close()
                else:
                    with pytest.raises(flight.FlightUnauthorizedError, match="readers may not upload"):
                        writer, _ = client.do_put(table, data.schema, options)
                        writer.write_table(data)
                        writer.close()
    (event,) = log_file.events("auth_failed")
    assert (event["reason"], event["rpc"]) == ("forbidden", "DO_PUT")


def test_unexpected_strategy_error_is_internal_and_the_log_has_no_token(
    user_module: Callable[[str, str], str], log_file: LogFile
) -> None:
    """An exception in verify is INTERNAL with a reference; the log keeps the traceback, not the token."""
    name = user_module("acme_auth.roles", ROLES_STRATEGY)
    with running_server(
        Methods(), token_settings(name, **ROLE_SETTINGS), logging_config=log_file.ini
    ) as server:
        with flight.FlightClient(server.location) as client:
            with pytest.raises(flight.FlightInternalError) as caught:
                call_as(client, "explode-token")
    info = gf.ErrorInfo.from_pyarrow_error(caught.value)
    assert info.code == gf.ErrorCode.INTERNAL_ERROR
    (event,) = log_file.events("auth_failed")
    assert event["error_ref"] in info.msg
    assert "LookupError: user store failed for <redacted>" in event["exception"]
    assert "explode-token" not in str(caught.value)
    assert "explode-token" not in log_file.path.read_text()


_CONCRETE = """
class {name}(gf.TokenVerificationStrategy):
    def verify(self, call_info, token):
        return None

    @classmethod
    def create(cls, ctx):
        return {created}
"""


@pytest.mark.parametrize(
    ("source", "suffix", "error", "message"),
    [
        ("X = 1\n", "", LoadError, "defines no TokenVerificationStrategy subclass"),
        (
            _CONCRETE.format(name="A", created="cls()") + _CONCRETE.format(name="B", created="cls()"),
            "",
            LoadError,
            "defines several TokenVerificationStrategy subclasses (A, B)",
        ),
        ("class Plain:\n    pass\n", ":Plain", LoadError, "is not a TokenVerificationStrategy"),
        ("X = 1\n", ":Nope", LoadError, "has no attribute 'Nope'"),
        ("import not_installed_dependency_xyz\n", "", LoadError, "No module named 'not_installed_dependency"),
        (_CONCRETE.format(name="A", created="42"), "", AuthSetupError, "create() returned int"),
        (_CONCRETE.format(name="A", created="1 / 0"), "", AuthSetupError, "ZeroDivisionError"),
    ],
)
def test_each_strategy_problem_fails_startup_with_its_message(
    user_module: Callable[[str, str], str], source: str, suffix: str, error: type[Exception], message: str
) -> None:
    """None/several strategies, a non-strategy, a missing name, an ImportError and a failing create()."""
    name = user_module("broken_auth", "import gooddata_flight_server as gf\n" + source)
    with pytest.raises(error) as caught:
        with running_server(Methods(), token_settings(name + suffix)):
            pass  # pragma: no cover - startup fails
    assert message in str(caught.value)


def test_missing_strategy_module_fails_startup() -> None:
    """A token_verification module that does not exist fails startup naming it."""
    with pytest.raises(LoadError, match=r"token verification module 'no_such_auth_pkg\.strategy' not found"):
        with running_server(Methods(), token_settings("no_such_auth_pkg.strategy")):
            pass  # pragma: no cover - startup fails
