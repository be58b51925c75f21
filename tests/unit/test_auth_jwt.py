"""JwtTokenVerification on its own: settings validation and token verification (keys made per run)."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pyarrow.flight as flight
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gooddata_flight_server._settings_load import load_settings
from gooddata_flight_server.auth.jwt import JwtTokenVerification
from gooddata_flight_server.context import ServerContext
from gooddata_flight_server.health import ServerHealthMonitor
from gooddata_flight_server.settings import ConfigError
from gooddata_flight_server.testing import to_toml

CALL = flight.CallInfo(flight.FlightMethod.DO_GET)
NO_EXECUTOR: Any = None  # strategies get the context but these tests never run tasks
SECRET = "a-shared-hmac-secret-of-at-least-32-bytes!"


def env(key: str) -> str:
    return f"GOODDATA_FLIGHT_JWT_TOKENS__{key.upper()}"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def make_ctx(tmp_path: Path) -> Callable[..., ServerContext]:
    """A ServerContext whose settings hold the given [jwt_tokens] section."""

    def _make(section: dict[str, Any] | None = None) -> ServerContext:
        path = tmp_path / "settings.toml"
        settings: dict[str, Any] = {"server": {"advertise_host": "127.0.0.1"}}
        if section is not None:
            settings["jwt_tokens"] = section
        path.write_text(to_toml(settings))
        dyn, config = load_settings([path])
        return ServerContext(
            settings=dyn,
            config=config,
            location=flight.Location.for_grpc_tcp("127.0.0.1", 17001),
            health=ServerHealthMonitor(),
            task_executor=NO_EXECUTOR,
        )

    return _make


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "alice", "exp": int(time.time()) + 300, **extra}


def problems_of(make_ctx: Callable[..., ServerContext], section: dict[str, Any] | None) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        JwtTokenVerification.create(make_ctx(section))
    return caught.value.problems


# -- settings ------------------------------------------------------------------------------------------


def test_missing_section_reports_algorithms_and_key_source(make_ctx: Callable[..., ServerContext]) -> None:
    """Without [jwt_tokens], both the algorithms and the key source are reported, with env names."""
    first, second = problems_of(make_ctx, None)
    assert first.startswith("jwt_tokens.algorithms: required")
    assert env("algorithms") in first
    assert "set exactly one key source" in second
    for key in ("public_key", "jwks_file", "secret"):
        assert env(key) in second


def test_every_problem_is_reported_at_once(make_ctx: Callable[..., ServerContext]) -> None:
    """'none', an unknown algorithm, a bad leeway, a typo and bad claims are all reported together."""
    section = {
        "algorithms": ["none", "RS999"],
        "secret": SECRET,
        "leeway_sec": -1,
        "audiance": "x",
        "required_claims": [1],
    }
    problems = problems_of(make_ctx, section)
    text = "\n".join(problems)
    assert "jwt_tokens.audiance: unknown setting, did you mean 'audience'?" in text
    assert "'none' is refused" in text
    assert "unknown algorithm 'RS999'" in text
    assert f"jwt_tokens.leeway_sec: expected a number >= 0, got -1 (env {env('leeway_sec')})" in text
    assert "jwt_tokens.required_claims: expected a list of non-empty strings" in text
    assert len(problems) == 5
    assert SECRET not in text


@pytest.mark.parametrize("value", ["NONE", "None"])
def test_none_algorithm_is_refused_in_any_case(make_ctx: Callable[..., ServerContext], value: str) -> None:
    """The 'none' algorithm is refused however it is spelt."""
    (problem,) = problems_of(make_ctx, {"algorithms": [value], "secret": SECRET})
    assert "'none' is refused" in problem


def test_two_key_sources_are_refused(make_ctx: Callable[..., ServerContext], tmp_path: Path) -> None:
    """Exactly one of public_key, jwks_file and secret may be set."""
    (problem,) = problems_of(make_ctx, {"algorithms": ["HS256"], "secret": SECRET, "jwks_file": "/x.json"})
    assert problem.endswith("; got jwks_file and secret")


def test_secret_rules(make_ctx: Callable[..., ServerContext], tmp_path: Path) -> None:
    """A secret must be long enough for its hash and only serves HS*; it is never shown."""
    short = "too-short-secret"
    problems = problems_of(make_ctx, {"algorithms": ["HS512", "RS256"], "secret": short})
    text = "\n".join(problems)
    assert "a secret only verifies HS256/HS384/HS512 tokens, not RS256" in text
    assert "HS512 needs a secret of at least 64 bytes" in text
    assert short not in text
    (problem,) = problems_of(make_ctx, {"algorithms": ["HS256"], "secret": 1234567})
    assert "expected a string, got a int (the value is not shown)" in problem
    assert "1234567" not in problem


def test_secret_from_a_file(make_ctx: Callable[..., ServerContext], tmp_path: Path) -> None:
    """secret = "@path" reads the secret from a file (trailing newline ignored)."""
    path = tmp_path / "hmac.secret"
    path.write_text(SECRET + "\n")
    strategy = JwtTokenVerification.create(make_ctx({"algorithms": ["HS256"], "secret": f"@{path}"}))
    assert strategy.verify(CALL, jwt.encode(claims(), SECRET, algorithm="HS256"))["sub"] == "alice"
    (problem,) = problems_of(make_ctx, {"algorithms": ["HS256"], "secret": f"@{tmp_path / 'nope'}"})
    assert "cannot use the secret file" in problem and "does not exist" in problem


def test_public_keys_cannot_verify_hmac(make_ctx: Callable[..., ServerContext], rsa_key: Any) -> None:
    """HS* with a public key is refused (key confusion), and so is a private key given as public_key."""
    (problem,) = problems_of(make_ctx, {"algorithms": ["HS256", "RS256"], "public_key": public_pem(rsa_key)})
    assert "HS256 need a shared secret" in problem
    private = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    (problem,) = problems_of(make_ctx, {"algorithms": ["RS256"], "public_key": private})
    assert "holds a private key" in problem
    assert "MII" not in problem


def test_public_key_must_suit_every_algorithm(make_ctx: Callable[..., ServerContext], rsa_key: Any) -> None:
    """An RSA key cannot verify ES256: mixing key families is reported."""
    (problem,) = problems_of(make_ctx, {"algorithms": ["RS256", "ES256"], "public_key": public_pem(rsa_key)})
    assert problem.startswith("jwt_tokens.public_key: is not a key for ES256")


def test_public_key_file_problems(make_ctx: Callable[..., ServerContext], tmp_path: Path) -> None:
    """A missing PEM file is reported against public_key with its env variable."""
    (problem,) = problems_of(make_ctx, {"algorithms": ["RS256"], "public_key": f"@{tmp_path / 'nope.pem'}"})
    assert "does not exist" in problem
    assert env("public_key") in problem


def test_jwks_file_problems(make_ctx: Callable[..., ServerContext], tmp_path: Path) -> None:
    """Unreadable, non-JSON, non-JWKS and keyless files are each reported."""
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{")
    not_jwks = tmp_path / "list.json"
    not_jwks.write_text("[]")
    empty = tmp_path / "empty.json"
    empty.write_text('{"keys": []}')
    expected = {
        str(tmp_path / "missing.json"): "does not exist",
        str(bad_json): "is not valid JSON",
        str(not_jwks): "is not a JSON Web Key Set",
        str(empty): "holds no keys",
    }
    for path, message in expected.items():
        (problem,) = problems_of(make_ctx, {"algorithms": ["RS256"], "jwks_file": path})
        assert message in problem, problem


def test_missing_pyjwt_names_the_extra(
    make_ctx: Callable[..., ServerContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without PyJWT, checking the settings (before the server binds) and create() fail with a
    configuration error giving the pip command that installs the jwt extra."""
    monkeypatch.setitem(sys.modules, "jwt", None)  # makes `import jwt` raise ImportError
    ctx = make_ctx({"algorithms": ["HS256"], "secret": SECRET})
    with pytest.raises(ConfigError, match=r"pip install 'gooddata-flight-server\[jwt\]'"):
        JwtTokenVerification.check_settings(ctx.settings)
    with pytest.raises(ConfigError, match=r"pip install 'gooddata-flight-server\[jwt\]'"):
        JwtTokenVerification.create(ctx)


def test_settings_from_the_environment(
    make_ctx: Callable[..., ServerContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every setting can come from GOODDATA_FLIGHT_JWT_TOKENS__*; a lone algorithm needs no list."""
    monkeypatch.setenv(env("algorithms"), "HS256")
    monkeypatch.setenv(env("secret"), SECRET)
    monkeypatch.setenv(env("audience"), '["svc-a", "svc-b"]')
    monkeypatch.setenv(env("leeway_sec"), "5")
    strategy = JwtTokenVerification.create(make_ctx())
    token = jwt.encode(claims(aud="svc-b", exp=int(time.time()) - 2), SECRET, algorithm="HS256")
    assert strategy.verify(CALL, token)["aud"] == "svc-b"


# -- verification --------------------------------------------------------------------------------------


@pytest.fixture
def rs256(make_ctx: Callable[..., ServerContext], rsa_key: Any) -> JwtTokenVerification:
    section = {"algorithms": ["RS256"], "public_key": public_pem(rsa_key), "issuer": "idp", "audience": "svc"}
    return JwtTokenVerification.create(make_ctx(section))


def sign(key: Any, payload: dict[str, Any], algorithm: str = "RS256", **headers: Any) -> str:
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers or None)


def test_valid_token_returns_its_claims(rs256: JwtTokenVerification, rsa_key: Any) -> None:
    """A correctly signed, current token for our audience and issuer verifies to its claims."""
    payload = claims(aud="svc", iss="idp", scope="read")
    assert rs256.verify(CALL, sign(rsa_key, payload)) == payload


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (lambda: claims(aud="svc", iss="idp", exp=int(time.time()) - 60), "the token has expired"),
        (lambda: claims(aud="svc", iss="idp", nbf=int(time.time()) + 600), "the token is not valid yet"),
        (lambda: claims(aud="other", iss="idp"), "the token's audience is not accepted"),
        (lambda: claims(aud="svc", iss="evil"), "the token's issuer is not accepted"),
        (lambda: {"aud": "svc", "iss": "idp", "sub": "alice"}, "the token lacks the required claim 'exp'"),
        (lambda: claims(iss="idp"), "the token lacks the required claim 'aud'"),
    ],
)
def test_claims_are_enforced(
    rs256: JwtTokenVerification, rsa_key: Any, payload: Callable[[], dict[str, Any]], message: str
) -> None:
    """exp, nbf, aud, iss and required claims each give their own unauthenticated reason."""
    token = sign(rsa_key, payload())
    with pytest.raises(flight.FlightUnauthenticatedError) as caught:
        rs256.verify(CALL, token)
    assert str(caught.value) == message


def test_wrong_key_algorithm_and_garbage_are_refused(
    rs256: JwtTokenVerification, other_rsa_key: Any, rsa_key: Any
) -> None:
    """Another key's signature, an unaccepted algorithm, 'none' and a non-JWT are refused."""
    payload = claims(aud="svc", iss="idp")
    cases = {
        sign(other_rsa_key, payload): "the token's signature does not verify",
        sign(rsa_key, payload, "RS512"): "the token's signing algorithm is not accepted",
        jwt.encode(payload, "", algorithm="none"): "the token's signing algorithm is not accepted",
        sign(SECRET, payload, "HS256"): "the token's signing algorithm is not accepted",
        "not.a.jwt": "the token is not a well-formed JWT",
    }
    for token, message in cases.items():
        with pytest.raises(flight.FlightUnauthenticatedError) as caught:
            rs256.verify(CALL, token)
        assert str(caught.value) == message
        assert token not in str(caught.value)


def test_required_claims_can_be_relaxed(make_ctx: Callable[..., ServerContext]) -> None:
    """required_claims = [] accepts a token without exp; listed claims become mandatory."""
    relaxed = JwtTokenVerification.create(
        make_ctx({"algorithms": ["HS256"], "secret": SECRET, "required_claims": []})
    )
    assert relaxed.verify(CALL, jwt.encode({"sub": "x"}, SECRET, algorithm="HS256")) == {"sub": "x"}
    strict = JwtTokenVerification.create(
        make_ctx({"algorithms": ["HS256"], "secret": SECRET, "required_claims": ["exp", "tenant"]})
    )
    with pytest.raises(flight.FlightUnauthenticatedError, match="required claim 'tenant'"):
        strict.verify(CALL, jwt.encode(claims(), SECRET, algorithm="HS256"))


def test_leeway_tolerates_clock_skew(make_ctx: Callable[..., ServerContext]) -> None:
    """leeway_sec lets a just-expired token through."""
    token = jwt.encode(claims(exp=int(time.time()) - 10), SECRET, algorithm="HS256")
    lenient = JwtTokenVerification.create(
        make_ctx({"algorithms": ["HS256"], "secret": SECRET, "leeway_sec": 60})
    )
    assert lenient.verify(CALL, token)["sub"] == "alice"
    strict = JwtTokenVerification.create(make_ctx({"algorithms": ["HS256"], "secret": SECRET}))
    with pytest.raises(flight.FlightUnauthenticatedError, match="expired"):
        strict.verify(CALL, token)


def _jwk(key: Any, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        jwt.algorithms.get_default_algorithms()[fields.pop("family")].to_jwk(key)
    )
    return {**data, **fields}


def test_jwks_picks_the_key_by_kid(
    make_ctx: Callable[..., ServerContext], tmp_path: Path, rsa_key: Any, other_rsa_key: Any
) -> None:
    """The token's kid selects the key; unknown kids, missing kids and alg mismatches are refused."""
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks = {
        "keys": [
            _jwk(rsa_key.public_key(), family="RS256", kid="rsa-1", alg="RS256", use="sig"),
            _jwk(other_rsa_key.public_key(), family="RS256", kid="rsa-2"),
            _jwk(ec_key.public_key(), family="ES256", kid="ec-1", alg="ES256"),
            _jwk(rsa_key.public_key(), family="RS256", kid="enc-1", use="enc"),  # skipped: not for signatures
        ]
    }
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    strategy = JwtTokenVerification.create(
        make_ctx({"algorithms": ["RS256", "ES256"], "jwks_file": str(path)})
    )
    assert strategy.verify(CALL, sign(rsa_key, claims(), kid="rsa-1"))["sub"] == "alice"
    assert strategy.verify(CALL, sign(other_rsa_key, claims(), kid="rsa-2"))["sub"] == "alice"
    assert strategy.verify(CALL, sign(ec_key, claims(), "ES256", kid="ec-1"))["sub"] == "alice"
    refused = {
        sign(rsa_key, claims(), kid="rsa-2"): "signature does not verify",
        sign(rsa_key, claims(), kid="enc-1"): "key id (kid) is not known",
        sign(rsa_key, claims(), kid="nope"): "key id (kid) is not known",
        sign(rsa_key, claims()): "names no key (kid header) and several keys are configured",
        sign(ec_key, claims(), "ES256", kid="rsa-1"): "algorithm does not match its key",
    }
    for token, message in refused.items():
        with pytest.raises(flight.FlightUnauthenticatedError, match=re.escape(message)):
            strategy.verify(CALL, token)


def test_jwks_with_a_single_key_accepts_tokens_without_kid(
    make_ctx: Callable[..., ServerContext], tmp_path: Path, rsa_key: Any
) -> None:
    """With one key in the set, a token without kid is verified with it."""
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [_jwk(rsa_key.public_key(), family="RS256")]}))
    strategy = JwtTokenVerification.create(make_ctx({"algorithms": ["RS256"], "jwks_file": str(path)}))
    assert strategy.verify(CALL, sign(rsa_key, claims()))["sub"] == "alice"


def test_jwks_duplicate_kids_are_refused(
    make_ctx: Callable[..., ServerContext], tmp_path: Path, rsa_key: Any
) -> None:
    """Two keys with the same kid make the set ambiguous: a config problem."""
    key = _jwk(rsa_key.public_key(), family="RS256", kid="same")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [key, key]}))
    (problem,) = problems_of(make_ctx, {"algorithms": ["RS256"], "jwks_file": str(path)})
    assert "key id 'same' appears twice" in problem


def test_sample_config_documents_every_jwt_setting() -> None:
    """Each [jwt_tokens] setting appears in sample-config.toml as a commented example with its env var."""
    text = (Path(__file__).parents[2] / "sample-config.toml").read_text(encoding="utf-8")
    section = text[text.index("[jwt_tokens]") :]
    for key in (
        "algorithms",
        "public_key",
        "jwks_file",
        "secret",
        "issuer",
        "audience",
        "required_claims",
        "leeway_sec",
    ):
        assert re.search(rf"^# {key} = ", section, re.MULTILINE), key
        assert f"# env: {env(key)}" in section, key


def test_token_with_audience_is_refused_when_none_is_configured(
    make_ctx: Callable[..., ServerContext],
) -> None:
    """Without an audience setting, a token addressed to some audience is refused (as documented)."""
    strategy = JwtTokenVerification.create(make_ctx({"algorithms": ["HS256"], "secret": SECRET}))
    with pytest.raises(flight.FlightUnauthenticatedError, match="audience is not accepted"):
        strategy.verify(CALL, jwt.encode(claims(aud="someone"), SECRET, algorithm="HS256"))


def test_public_key_may_be_a_certificate(make_ctx: Callable[..., ServerContext], tmp_path: Path) -> None:
    """An X.509 certificate PEM (as identity providers publish) works as public_key."""
    leaf = trustme.CA().issue_cert("idp.example", key_type=trustme.KeyType.RSA)
    cert_file = tmp_path / "idp-cert.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert_file))
    private = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    strategy = JwtTokenVerification.create(make_ctx({"algorithms": ["RS256"], "public_key": f"@{cert_file}"}))
    assert strategy.verify(CALL, sign(private, claims()))["sub"] == "alice"
    with pytest.raises(flight.FlightUnauthenticatedError, match="signature does not verify"):
        strategy.verify(CALL, sign(rsa.generate_private_key(public_exponent=65537, key_size=2048), claims()))
