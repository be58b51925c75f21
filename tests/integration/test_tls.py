"""TLS and mutual TLS through real servers and clients; certificates are generated per run by trustme."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.flight as flight
import pytest
import trustme

import gooddata_flight_server as gf
from gooddata_flight_server.settings import ConfigError
from gooddata_flight_server.testing import running_server

# a failed handshake should fail fast; the timeout only bounds a test that would otherwise hang
QUICK = flight.FlightCallOptions(timeout=10)


@dataclass(frozen=True)
class Pki:
    """PEM files of a CA and a server certificate it signed, plus client material in memory."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    ca_pem: bytes
    client_cert: bytes
    client_key: bytes
    stranger_cert: bytes
    stranger_key: bytes


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client.example")
    stranger = trustme.CA().issue_cert("stranger.example")  # signed by a CA the server does not trust
    base = tmp_path_factory.mktemp("tls")
    ca_file, cert_file, key_file = base / "ca.pem", base / "server.pem", base / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(key_file))
    return Pki(
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        ca_pem=ca.cert_pem.bytes(),
        client_cert=b"".join(blob.bytes() for blob in client.cert_chain_pems),
        client_key=client.private_key_pem.bytes(),
        stranger_cert=b"".join(blob.bytes() for blob in stranger.cert_chain_pems),
        stranger_key=stranger.private_key_pem.bytes(),
    )


class Ping(gf.FlightServerMethods):
    def do_action(self, context: flight.ServerCallContext, action: flight.Action) -> Iterator[bytes]:
        yield b"pong"


def tls_settings(pki: Pki, **server: Any) -> dict[str, dict[str, Any]]:
    return {
        "server": {
            "use_tls": True,
            "tls_certificate": f"@{pki.cert_file}",
            "tls_private_key": f"@{pki.key_file}",
            **server,
        }
    }


def ping(client: flight.FlightClient, options: flight.FlightCallOptions = QUICK) -> list[bytes]:
    return [r.body.to_pybytes() for r in client.do_action(flight.Action("ping", b""), options)]


def test_tls_serves_grpc_tls_to_clients_trusting_the_ca(pki: Pki) -> None:
    """use_tls advertises grpc+tls://; a client trusting the CA gets answers, others cannot connect."""
    with running_server(Ping(), tls_settings(pki)) as server:
        assert server.location.uri.decode().startswith("grpc+tls://127.0.0.1:")
        with flight.FlightClient(server.location, tls_root_certs=pki.ca_pem) as client:
            assert ping(client) == [b"pong"]
        with flight.FlightClient(server.location) as untrusting:  # system roots only
            with pytest.raises(flight.FlightUnavailableError):
                ping(untrusting)
        plain = flight.Location.for_grpc_tcp("127.0.0.1", int(server.location.uri.decode().rsplit(":", 1)[1]))
        with flight.FlightClient(plain) as cleartext:
            with pytest.raises(flight.FlightUnavailableError):
                ping(cleartext)


def test_tls_with_inline_pem(pki: Pki) -> None:
    """Certificate and key given inline as PEM text work like @path."""
    settings = tls_settings(
        pki, tls_certificate=pki.cert_file.read_text(), tls_private_key=pki.key_file.read_text()
    )
    with running_server(Ping(), settings) as server:
        with flight.FlightClient(server.location, tls_root_certs=pki.ca_pem) as client:
            assert ping(client) == [b"pong"]


def test_mtls_requires_a_client_certificate_signed_by_the_root(pki: Pki) -> None:
    """With use_mtls a client certificate from the CA is accepted; none, or a stranger's, is refused."""
    settings = tls_settings(pki, use_mtls=True, tls_root_certificate=f"@{pki.ca_file}")
    with running_server(Ping(), settings) as server:
        with flight.FlightClient(
            server.location, tls_root_certs=pki.ca_pem, cert_chain=pki.client_cert, private_key=pki.client_key
        ) as client:
            assert ping(client) == [b"pong"]
        with flight.FlightClient(server.location, tls_root_certs=pki.ca_pem) as anonymous:
            with pytest.raises(flight.FlightUnavailableError):
                ping(anonymous)
        with flight.FlightClient(
            server.location,
            tls_root_certs=pki.ca_pem,
            cert_chain=pki.stranger_cert,
            private_key=pki.stranger_key,
        ) as stranger:
            with pytest.raises(flight.FlightUnavailableError):
                ping(stranger)


def test_tls_with_token_auth_as_in_the_readme(pki: Pki) -> None:
    """Tokens over grpc+tls: the README client call shape against a TLS server."""
    settings = {
        **tls_settings(pki, authentication_method="token"),
        "enumerated_tokens": {"tokens": ["tls-token-secret"]},
    }
    with running_server(Ping(), settings) as server:
        with flight.FlightClient(server.location, tls_root_certs=pki.ca_pem) as client:
            opts = flight.FlightCallOptions(
                headers=[(b"authorization", b"Bearer tls-token-secret")], timeout=10
            )
            assert ping(client, opts) == [b"pong"]
            with pytest.raises(flight.FlightUnauthenticatedError):
                ping(client)


@pytest.mark.parametrize(
    ("server", "fragments"),
    [
        (
            {"use_tls": True, "tls_certificate": "@{missing}", "tls_private_key": "@{key}"},
            [
                "server.tls_certificate: '{missing}' does not exist",
                "GOODDATA_FLIGHT_SERVER__TLS_CERTIFICATE",
            ],
        ),
        (
            {"use_tls": True},
            ["server.tls_certificate: required when use_tls is true", "server.tls_private_key: required"],
        ),
        (
            {"use_tls": True, "tls_certificate": "@{cert}", "tls_private_key": "@{key}", "use_mtls": True},
            ["server.tls_root_certificate: required when use_mtls is true"],
        ),
    ],
)
def test_tls_config_errors_surface_as_config_error(
    pki: Pki, tmp_path: Path, server: dict[str, Any], fragments: list[str]
) -> None:
    """A missing file, TLS without certificate, mTLS without root: ConfigError before binding."""
    paths = {"missing": tmp_path / "missing.pem", "cert": pki.cert_file, "key": pki.key_file}
    resolved = {k: v.format(**paths) if isinstance(v, str) else v for k, v in server.items()}
    with pytest.raises(ConfigError) as caught:
        with running_server(Ping(), {"server": resolved}):
            pass  # pragma: no cover - the configuration is refused
    text = str(caught.value)
    for fragment in fragments:
        assert fragment.format(**paths) in text
    assert pki.key_file.read_text().splitlines()[1] not in text  # no key material in the message


def test_inline_material_that_is_not_pem_fails_startup(pki: Pki) -> None:
    """Inline values are not checked when the configuration is read (the original accepts them);
    TLS refuses them when the listener starts, with a one-line reason (the CLI exits 3)."""
    settings = tls_settings(pki, tls_certificate="not a pem")
    with pytest.raises(
        OSError, match=r"cannot bind the Flight server to grpc\+tls://.*TLS certificate or private key"
    ):
        with running_server(Ping(), settings):
            pass  # pragma: no cover - startup fails


def test_key_not_matching_the_certificate_fails_startup(pki: Pki, tmp_path: Path) -> None:
    """A private key that does not belong to the certificate stops the server from starting at all."""
    other_key = tmp_path / "other.key"
    trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(other_key))
    with pytest.raises(OSError, match=r"grpc\+tls://127\.0\.0\.1.*does the key belong to the certificate"):
        with running_server(Ping(), tls_settings(pki, tls_private_key=f"@{other_key}")):
            pass  # pragma: no cover - startup fails
