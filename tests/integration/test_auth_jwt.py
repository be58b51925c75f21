"""JWT authentication through real servers and clients (keys generated per run)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import orjson
import pyarrow.flight as flight
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import gooddata_flight_server as gf
from gooddata_flight_server.settings import ConfigError
from gooddata_flight_server.testing import running_server
from tests.conftest import LogFile


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def foreign_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def public_key_file(tmp_path: Path, signing_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "jwt-public.pem"
    path.write_bytes(
        signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


class Claims(gf.FlightServerMethods):
    """DoAction answers the caller's token_data (the decoded claims)."""

    def do_action(self, context: flight.ServerCallContext, action: flight.Action) -> Iterator[bytes]:
        yield orjson.dumps(context.get_middleware("auth_token").token_data)


def settings(**jwt_tokens: Any) -> dict[str, dict[str, Any]]:
    return {
        "server": {"authentication_method": "token", "token_verification": "JwtTokenVerification"},
        "jwt_tokens": {
            "algorithms": ["RS256"],
            "audience": "flight-svc",
            "issuer": "https://idp",
            **jwt_tokens,
        },
    }


def token(key: Any, **overrides: Any) -> str:
    now = int(time.time())
    payload = {"sub": "alice", "aud": "flight-svc", "iss": "https://idp", "iat": now, "exp": now + 300}
    payload.update(overrides)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm="RS256")


def claims_of(client: flight.FlightClient, jwt_token: str) -> Any:
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {jwt_token}".encode())])
    (result,) = client.do_action(flight.Action("whoami", b""), options)
    return orjson.loads(result.body.to_pybytes())


def test_valid_jwt_claims_reach_the_handler(signing_key: Any, public_key_file: Path) -> None:
    """A valid RS256 token verified with a PEM file key gives the handler its claims as token_data."""
    valid = token(signing_key, tenant="acme")
    with running_server(Claims(), settings(public_key=f"@{public_key_file}")) as server:
        with flight.FlightClient(server.location) as client:
            claims = claims_of(client, valid)
    assert claims["sub"] == "alice"
    assert claims["tenant"] == "acme"
    assert claims == jwt.decode(valid, options={"verify_signature": False})


def test_invalid_jwts_are_refused_with_a_reason_and_never_logged(
    signing_key: Any, foreign_key: Any, public_key_file: Path, log_file: LogFile
) -> None:
    """Expired, wrong audience, wrong key, not yet valid: UNAUTHENTICATED saying why; no token in logs."""
    now = int(time.time())
    refused = {
        token(signing_key, exp=now - 30): "the token has expired",
        token(signing_key, aud="another-svc"): "the token's audience is not accepted",
        token(foreign_key): "the token's signature does not verify",
        token(signing_key, nbf=now + 3600): "the token is not valid yet",
        token(signing_key, exp=None): "the token lacks the required claim 'exp'",
    }
    with running_server(
        Claims(), settings(public_key=f"@{public_key_file}"), logging_config=log_file.ini
    ) as server:
        with flight.FlightClient(server.location) as client:
            for bad, reason in refused.items():
                with pytest.raises(flight.FlightUnauthenticatedError) as caught:
                    claims_of(client, bad)
                assert reason in str(caught.value)
                assert bad not in str(caught.value)
    events = log_file.events("auth_failed")
    assert [e["reason"] for e in events] == ["invalid_token"] * len(refused)
    assert [e["detail"] for e in events] == list(refused.values())
    log_text = log_file.path.read_text()
    for bad in refused:
        for part in bad.split("."):
            assert part not in log_text


def test_jwks_file_and_kid(tmp_path: Path, signing_key: Any) -> None:
    """With a JWKS file the token's kid picks the key."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": "k-2024", "alg": "RS256", "use": "sig"}]}))
    now = int(time.time())
    payload = {"sub": "bob", "aud": "flight-svc", "iss": "https://idp", "exp": now + 60}
    good = jwt.encode(payload, signing_key, algorithm="RS256", headers={"kid": "k-2024"})
    unknown = jwt.encode(payload, signing_key, algorithm="RS256", headers={"kid": "k-1999"})
    with running_server(Claims(), settings(jwks_file=str(path))) as server:
        with flight.FlightClient(server.location) as client:
            assert claims_of(client, good)["sub"] == "bob"
            with pytest.raises(flight.FlightUnauthenticatedError, match=r"key id \(kid\) is not known"):
                claims_of(client, unknown)


def test_invalid_jwt_settings_fail_startup_listing_every_problem() -> None:
    """Bad [jwt_tokens] settings fail startup with all problems and their env variable names."""
    bad: dict[str, dict[str, Any]] = {
        "server": {"authentication_method": "token", "token_verification": "JwtTokenVerification"},
        "jwt_tokens": {"algorithms": ["none"]},
    }
    with pytest.raises(ConfigError) as caught:
        with running_server(Claims(), bad):
            pass  # pragma: no cover - startup fails
    text = str(caught.value)
    assert "GOODDATA_FLIGHT_JWT_TOKENS__ALGORITHMS" in text
    assert "'none' is refused" in text
    assert "GOODDATA_FLIGHT_JWT_TOKENS__PUBLIC_KEY" in text
    assert len(caught.value.problems) == 2
