"""Token verification strategies: enumerated tokens, loading custom strategies by name, create()."""

from __future__ import annotations

import contextlib
import hmac
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.flight as flight
import pytest

from gooddata_flight_server._settings_load import load_settings
from gooddata_flight_server.auth.loading import create_strategy, load_strategy_class
from gooddata_flight_server.auth.strategy import (
    AuthSetupError,
    EnumeratedTokenVerification,
    TokenVerificationStrategy,
)
from gooddata_flight_server.context import ServerContext
from gooddata_flight_server.health import ServerHealthMonitor
from gooddata_flight_server.loader import LoadError
from gooddata_flight_server.settings import ConfigError
from gooddata_flight_server.testing import to_toml

TOKENS_ENV = "GOODDATA_FLIGHT_ENUMERATED_TOKENS__TOKENS"
CALL = flight.CallInfo(flight.FlightMethod.DO_GET)
NO_EXECUTOR: Any = None  # strategies get the context but these tests never run tasks

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

STRATEGY_BASE = "from gooddata_flight_server.auth.strategy import TokenVerificationStrategy as Base\n"


@pytest.fixture
def make_ctx(tmp_path: Path) -> Callable[..., ServerContext]:
    """Builds a ServerContext from settings written to a real config file."""

    def _make(settings: dict[str, dict[str, Any]] | None = None) -> ServerContext:
        path = tmp_path / "settings.toml"
        server = {"advertise_host": "127.0.0.1", "authentication_method": "token"}
        path.write_text(to_toml({"server": server, **(settings or {})}))
        dyn, config = load_settings([path])
        return ServerContext(
            settings=dyn,
            config=config,
            location=flight.Location.for_grpc_tcp("127.0.0.1", 17001),
            health=ServerHealthMonitor(),
            task_executor=NO_EXECUTOR,
        )

    return _make


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Writes importable modules under tmp_path; sys.path and sys.modules are restored afterwards.

    Unless ``verbatim``, the module starts with ``Base`` imported (the strategy base class).
    """
    root = tmp_path / "user_code"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    tops: set[str] = set()

    def _write(name: str, source: str, *, verbatim: bool = False) -> str:
        top = name.split(".", maxsplit=1)[0]
        for loaded in [m for m in sys.modules if m.split(".")[0] == top]:
            monkeypatch.delitem(sys.modules, loaded)  # e.g. an examples/my_service imported earlier
        tops.add(top)
        path = root.joinpath(*name.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        for package in path.relative_to(root).parents:
            if package != Path("."):
                (root / package / "__init__.py").touch()
        path.write_text(("" if verbatim else STRATEGY_BASE) + textwrap.dedent(source))
        return name

    yield _write
    for loaded in [m for m in sys.modules if m.split(".")[0] in tops]:
        del sys.modules[loaded]


# -- EnumeratedTokenVerification -----------------------------------------------------------------------


def test_enumerated_accepts_configured_tokens_and_rejects_others() -> None:
    """Any configured token verifies (no exception); anything else is unauthenticated."""
    strategy = EnumeratedTokenVerification(["alpha-secret", "beta-secret"])
    strategy.verify(CALL, "alpha-secret")
    strategy.verify(CALL, "beta-secret")
    for wrong in ("alpha", "alpha-secret-", "ALPHA-SECRET", ""):
        with pytest.raises(flight.FlightUnauthenticatedError) as caught:
            strategy.verify(CALL, wrong)
        assert "alpha" not in str(caught.value).lower()


def test_enumerated_compares_against_every_token_without_early_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each verify compares equal-length digests with every configured token, whichever one matches."""
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    strategy = EnumeratedTokenVerification(["t-one", "a-much-longer-token-two", "t3"])
    for presented in ("t-one", "t3", "nope", "x" * 500):
        calls.clear()
        with contextlib.suppress(flight.FlightUnauthenticatedError):
            strategy.verify(CALL, presented)
        assert calls == [(32, 32)] * 3, presented


def test_enumerated_needs_a_token() -> None:
    """An empty token list is a programming error when built directly."""
    with pytest.raises(ValueError, match="at least one token"):
        EnumeratedTokenVerification([])


def test_enumerated_create_reads_tokens_from_the_config_file(make_ctx: Callable[..., ServerContext]) -> None:
    """create() reads [enumerated_tokens] tokens; configured tokens are stripped like presented ones."""
    strategy = EnumeratedTokenVerification.create(make_ctx({"enumerated_tokens": {"tokens": [" tok-a "]}}))
    strategy.verify(CALL, "tok-a")
    with pytest.raises(flight.FlightUnauthenticatedError):
        strategy.verify(CALL, "tok-b")


def test_enumerated_create_reads_tokens_from_the_environment(
    make_ctx: Callable[..., ServerContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GOODDATA_FLIGHT_ENUMERATED_TOKENS__TOKENS='["a","b"]' configures the tokens."""
    monkeypatch.setenv(TOKENS_ENV, '["env-a","env-b"]')
    strategy = EnumeratedTokenVerification.create(make_ctx())
    strategy.verify(CALL, "env-b")
    with pytest.raises(flight.FlightUnauthenticatedError):
        strategy.verify(CALL, "env-c")


@pytest.mark.parametrize("tokens", [None, [], ""])
def test_enumerated_without_tokens_says_how_to_configure_them(
    make_ctx: Callable[..., ServerContext], tokens: Any
) -> None:
    """No tokens fails creation with a message naming the env variable and the TOML section."""
    settings = {} if tokens is None else {"enumerated_tokens": {"tokens": tokens}}
    with pytest.raises(ConfigError) as caught:
        EnumeratedTokenVerification.create(make_ctx(settings))
    (problem,) = caught.value.problems
    assert TOKENS_ENV in problem
    assert "[enumerated_tokens]" in problem


def test_enumerated_bad_values_are_reported_without_showing_them(
    make_ctx: Callable[..., ServerContext],
) -> None:
    """A non-list, a non-string or an empty entry is reported, and no value is echoed."""
    with pytest.raises(ConfigError) as caught:
        EnumeratedTokenVerification.create(make_ctx({"enumerated_tokens": {"tokens": "lone-secret"}}))
    assert "expected a list" in str(caught.value)
    assert "lone-secret" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        EnumeratedTokenVerification.create(
            make_ctx({"enumerated_tokens": {"tokens": ["good-secret", 42, " "]}})
        )
    problems = caught.value.problems
    assert len(problems) == 2
    assert "token #2 is a int" in problems[0]
    assert "token #3 is empty" in problems[1]
    assert all(TOKENS_ENV in p and "good-secret" not in p and "42" not in p for p in problems)


# -- loading strategies by name ------------------------------------------------------------------------


def test_built_in_names_resolve() -> None:
    """The built-in strategies are found by their class names."""
    assert load_strategy_class("EnumeratedTokenVerification") is EnumeratedTokenVerification
    assert load_strategy_class(" JwtTokenVerification ").__name__ == "JwtTokenVerification"


def test_module_with_one_strategy_is_found_both_ways(user_module: Callable[..., str]) -> None:
    """'pkg.module' finds the single strategy defined there; 'pkg.module:Class' names it."""
    name = user_module(
        "acme.auth.tokens",
        """
        from gooddata_flight_server.auth.strategy import EnumeratedTokenVerification  # imported: ignored

        class Helper:
            pass

        class Mine(Base):
            def verify(self, call_info, token):
                return {"user": token[:1]}

            @classmethod
            def create(cls, ctx):
                return cls()
        """,
    )
    by_module = load_strategy_class(name)
    assert by_module.__name__ == "Mine"
    assert load_strategy_class(f"{name}:Mine") is by_module


def test_abstract_base_next_to_one_concrete_strategy_is_not_ambiguous(
    user_module: Callable[..., str],
) -> None:
    """An abstract intermediate class in the module does not count as a second strategy."""
    name = user_module(
        "layered_auth",
        """
        import abc

        class Common(Base):
            @abc.abstractmethod
            def lookup(self, token): ...

            def verify(self, call_info, token):
                return self.lookup(token)

        class Concrete(Common):
            def lookup(self, token):
                return token

            @classmethod
            def create(cls, ctx):
                return cls()
        """,
    )
    assert load_strategy_class(name).__name__ == "Concrete"


_TWO = """
class A(Base):
    def verify(self, call_info, token): ...
    @classmethod
    def create(cls, ctx): return cls()

class B(A):
    pass
"""


@pytest.mark.parametrize(
    ("source", "suffix", "expected"),
    [
        ("X = 1\n", "", "defines no TokenVerificationStrategy subclass; define one or name it as"),
        (
            "from gooddata_flight_server.auth.strategy import EnumeratedTokenVerification\n",
            "",
            "defines no TokenVerificationStrategy subclass, it only imports EnumeratedTokenVerification",
        ),
        (_TWO, "", "defines several TokenVerificationStrategy subclasses (A, B); choose one as"),
        (
            "class Half(Base):\n    def create(cls, ctx): ...\n",
            "",
            "defines only abstract TokenVerificationStrategy classes (Half)",
        ),
        ("X = 1\n", ":X", "is not a class but int"),
        ("class NotOne:\n    pass\n", ":NotOne", "is not a TokenVerificationStrategy: it must subclass"),
        ("X = 1\n", ":Missing", "has no attribute 'Missing'"),
        (
            "class Half(Base):\n    def create(cls, ctx): ...\n",
            ":Half",
            "is abstract: it does not implement verify",
        ),
        ("import no_such_dependency_xyz\n", "", "failed: ModuleNotFoundError: No module named 'no_such_dep"),
        ("raise RuntimeError('broken at import')\n", "", "failed: RuntimeError: broken at import"),
    ],
)
def test_each_loading_failure_has_its_own_one_line_message(
    user_module: Callable[..., str], source: str, suffix: str, expected: str
) -> None:
    """Module with none/several/abstract-only strategies, bad named classes and import failures."""
    name = user_module("bad_strategy_mod", source)
    with pytest.raises(LoadError) as caught:
        load_strategy_class(name + suffix)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_module_and_invalid_spec_are_reported() -> None:
    """A module that does not exist and a name that is no module path each get their message."""
    with pytest.raises(LoadError, match=r"token verification module 'no_such_pkg\.auth' not found"):
        load_strategy_class("no_such_pkg.auth")
    with pytest.raises(LoadError, match="invalid token verification 'not a module'"):
        load_strategy_class("not a module")


# -- create_strategy -----------------------------------------------------------------------------------


def test_seed_readme_strategy_loads_and_creates_unchanged(
    user_module: Callable[..., str], make_ctx: Callable[..., ServerContext]
) -> None:
    """The README's MyCustomTokenVerification module is found by module name and created."""
    name = user_module("my_service.auth.custom_token_verification", SEED_STRATEGY, verbatim=True)
    strategy = create_strategy(name, make_ctx())
    assert type(strategy).__name__ == "MyCustomTokenVerification"
    assert isinstance(strategy, TokenVerificationStrategy)


def test_create_failure_names_the_strategy(
    user_module: Callable[..., str], make_ctx: Callable[..., ServerContext]
) -> None:
    """An exception in create() becomes one line naming the strategy, the original chained."""
    name = user_module(
        "failing_create",
        """
        class Db(Base):
            def verify(self, call_info, token): ...

            @classmethod
            def create(cls, ctx):
                raise ConnectionError("token db\\nunreachable")
        """,
    )
    with pytest.raises(AuthSetupError) as caught:
        create_strategy(name, make_ctx())
    assert str(caught.value) == (
        "token verification strategy 'failing_create:Db' failed to initialise: "
        "ConnectionError: token db unreachable"
    )
    assert isinstance(caught.value.__cause__, ConnectionError)


def test_create_returning_a_non_strategy_fails(
    user_module: Callable[..., str], make_ctx: Callable[..., ServerContext]
) -> None:
    """create() must return a strategy instance."""
    name = user_module(
        "wrong_create",
        """
        class Odd(Base):
            def verify(self, call_info, token): ...

            @classmethod
            def create(cls, ctx):
                return "not a strategy"
        """,
    )
    with pytest.raises(
        AuthSetupError, match=r"create\(\) returned str, expected a TokenVerificationStrategy"
    ):
        create_strategy(f"{name}:Odd", make_ctx())


def test_create_is_called_once_with_the_context(
    user_module: Callable[..., str], make_ctx: Callable[..., ServerContext]
) -> None:
    """create_strategy calls create(ctx) exactly once, with the context it was given."""
    name = user_module(
        "counting_create",
        """
        seen = []

        class Counting(Base):
            def verify(self, call_info, token): ...

            @classmethod
            def create(cls, ctx):
                seen.append(ctx)
                return cls()
        """,
    )
    ctx = make_ctx()
    create_strategy(name, ctx)
    assert sys.modules[name].seen == [ctx]


def test_config_error_from_create_passes_through(make_ctx: Callable[..., ServerContext]) -> None:
    """The built-in strategy's ConfigError reaches the caller as it is (not wrapped)."""
    with pytest.raises(ConfigError, match=TOKENS_ENV):
        create_strategy("EnumeratedTokenVerification", make_ctx())
