"""``JwtTokenVerification``: accept signed JSON Web Tokens, verified with PyJWT (the ``jwt`` extra).

Settings live in the ``[jwt_tokens]`` section (see sample-config.toml) and are validated when the
strategy is created, every problem reported at once with its environment variable:

- ``algorithms`` (required): the signing algorithms accepted, e.g. ``["RS256"]``. There is no
  default and ``none`` is refused, so an unsigned token can never pass.
- exactly one key source: ``public_key`` (a PEM public key or X.509 certificate, inline or
  ``@path``), ``jwks_file`` (a JSON Web Key Set; the token's ``kid`` header picks the key) or
  ``secret`` (HS256/384/512 only, at least as long as the hash, RFC 7518 section 3.2; inline or
  ``@path``). Asymmetric algorithms cannot be mixed with a secret or HMAC ones with public keys,
  which closes the classic key-confusion attack.
- ``issuer``, ``audience`` (a string or a list), ``required_claims`` (default ``["exp"]``: a
  token that never expires is refused unless you opt out), ``leeway_sec`` (clock skew, default 0).

``exp`` and ``nbf`` are always enforced when present. The decoded claims become ``token_data``.
Errors say why a token was refused (expired, wrong audience...) but never echo the token.

PyJWT (and cryptography) are imported in ``create``, never when this module is imported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

import pyarrow.flight
import structlog

from gooddata_flight_server._files import FileProblem, read_small_file
from gooddata_flight_server._settings_parse import SectionReader, env_var_name, show
from gooddata_flight_server.auth.strategy import TokenVerificationStrategy
from gooddata_flight_server.context import ServerContext
from gooddata_flight_server.settings import ConfigError

__all__ = ["JWT_SECTION", "JwtTokenVerification"]

log = structlog.get_logger(__name__)

JWT_SECTION = "jwt_tokens"
INSTALL_HINT = "pip install 'gooddata-flight-server[jwt]'"

_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "algorithms": None,
        "public_key": None,
        "jwks_file": None,
        "secret": None,
        "issuer": None,
        "audience": None,
        "required_claims": ("exp",),
        "leeway_sec": 0.0,
    }
)
_KEY_SOURCES = ("public_key", "jwks_file", "secret")
_HMAC_MIN_BYTES = MappingProxyType({"HS256": 32, "HS384": 48, "HS512": 64})

# (PyJWT exception class name, message for the client); the first match wins, so subclasses first
_FAILURES = (
    ("ExpiredSignatureError", "the token has expired"),
    ("ImmatureSignatureError", "the token is not valid yet"),
    ("InvalidAudienceError", "the token's audience is not accepted"),
    ("InvalidIssuerError", "the token's issuer is not accepted"),
    ("InvalidSignatureError", "the token's signature does not verify"),
    ("InvalidAlgorithmError", "the token's signing algorithm is not accepted"),
    ("InvalidKeyError", "the token cannot be verified with the configured key"),
    ("DecodeError", "the token is not a well-formed JWT"),
    ("InvalidIssuedAtError", "the token's issued-at time (iat) is invalid"),
)


class JwtTokenVerification(TokenVerificationStrategy):
    """Verifies JWTs against the configured key(s) and claims; ``token_data`` is the claims dict."""

    def __init__(
        self,
        jwt: ModuleType,
        *,
        algorithms: Sequence[str],
        key: Any = None,
        jwks: Mapping[str | None, tuple[Any, str | None]] | None = None,
        issuer: str | Sequence[str] | None = None,
        audience: str | Sequence[str] | None = None,
        required_claims: Sequence[str] = ("exp",),
        leeway_sec: float = 0.0,
    ) -> None:
        if (key is None) == (jwks is None):
            raise ValueError("give exactly one of key and jwks")
        self._jwt = jwt
        self._algorithms = list(algorithms)
        self._key = key
        self._jwks = dict(jwks) if jwks is not None else None
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_sec
        self._decoder = jwt.PyJWT(options={"verify_signature": True, "require": list(required_claims)})
        self._error = jwt.PyJWTError
        self._failures = tuple((getattr(jwt, name), message) for name, message in _FAILURES)

    def verify(self, call_info: pyarrow.flight.CallInfo, token: str) -> dict[str, Any]:
        try:
            key = self._key if self._jwks is None else self._jwks_key(token)
            claims: dict[str, Any] = self._decoder.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
            )
        except self._error as e:
            raise pyarrow.flight.FlightUnauthenticatedError(self._describe(e)) from None
        return claims

    def _jwks_key(self, token: str) -> Any:
        assert self._jwks is not None
        header = self._jwt.get_unverified_header(token)
        kid = header.get("kid")
        if kid is None and len(self._jwks) == 1:
            ((key, alg),) = self._jwks.values()
        elif kid is None:
            raise pyarrow.flight.FlightUnauthenticatedError(
                "the token names no key (kid header) and several keys are configured"
            )
        else:
            entry = self._jwks.get(kid) if isinstance(kid, str) else None
            if entry is None:
                raise pyarrow.flight.FlightUnauthenticatedError("the token's key id (kid) is not known")
            key, alg = entry
        if alg is not None and header.get("alg") != alg:
            raise pyarrow.flight.FlightUnauthenticatedError("the token's algorithm does not match its key")
        return key

    def _describe(self, error: Exception) -> str:
        if isinstance(error, self._jwt.MissingRequiredClaimError):
            return f"the token lacks the required claim '{error.claim}'"
        for kind, message in self._failures:
            if isinstance(error, kind):
                return message
        return "the token is not valid"

    @classmethod
    def check_settings(cls, settings: Any) -> None:
        _read_settings(settings, _import_jwt())

    @classmethod
    def create(cls, ctx: ServerContext) -> JwtTokenVerification:
        jwt = _import_jwt()
        settings = _read_settings(ctx.settings, jwt)
        strategy = cls(jwt, **settings)
        log.info(
            "jwt_verification_configured",
            algorithms=settings["algorithms"],
            keys=len(settings["jwks"]) if settings.get("jwks") is not None else 1,
            issuer=settings["issuer"],
            audience=settings["audience"],
            required_claims=settings["required_claims"],
        )
        return strategy


def _import_jwt() -> ModuleType:
    try:
        import jwt  # noqa: PLC0415
    except ImportError:
        raise ConfigError(
            [
                "server.token_verification: JwtTokenVerification needs PyJWT, which is not installed: "
                f"{INSTALL_HINT}"
            ]
        ) from None
    return jwt


def _read_settings(settings: Any, jwt: ModuleType) -> dict[str, Any]:
    """The ``[jwt_tokens]`` section, validated, as keyword arguments of JwtTokenVerification."""
    problems: list[str] = []
    try:
        raw = settings.get(JWT_SECTION)
    except Exception as e:  # a Dynaconf @token that cannot be evaluated; its text may hold the secret
        raise ConfigError([f"{JWT_SECTION}: cannot evaluate the section: {type(e).__name__}"]) from None
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError([f"{JWT_SECTION}: expected a table, got a {type(raw).__name__}"])
    values = {str(key).lower(): value for key, value in (raw or {}).items()}
    r = SectionReader(JWT_SECTION, values, _DEFAULTS, problems)
    r.reject_unknown_keys()

    algorithms = _algorithms(r, jwt)
    sources = [key for key in _KEY_SOURCES if r.is_set(key)]
    if len(sources) != 1:
        choices = ", ".join(f"{key} (env {env_var_name(JWT_SECTION, key)})" for key in _KEY_SOURCES)
        got = f"; got {' and '.join(sources)}" if sources else ""
        problems.append(f"{JWT_SECTION}: set exactly one key source: {choices}{got}")
    hmac = [alg for alg in algorithms if alg in _HMAC_MIN_BYTES]
    asymmetric = [alg for alg in algorithms if alg not in _HMAC_MIN_BYTES]
    result: dict[str, Any] = {
        "algorithms": algorithms,
        "issuer": _one_or_many(r, "issuer"),
        "audience": _one_or_many(r, "audience"),
        "required_claims": _string_list(r, "required_claims", allow_empty=True) or [],
        "leeway_sec": r.number("leeway_sec", 0, inclusive=True),
    }
    if len(sources) == 1 and sources[0] == "secret":
        if asymmetric:
            r.problem(
                "algorithms", f"a secret only verifies HS256/HS384/HS512 tokens, not {', '.join(asymmetric)}"
            )
        result["key"] = _secret(r, hmac)
    elif len(sources) == 1:
        if hmac:
            r.problem(
                "algorithms",
                f"{', '.join(hmac)} need a shared secret; public keys verify only asymmetric algorithms",
            )
        if sources[0] == "public_key":
            result["key"] = _public_key(r, jwt, asymmetric)
        else:
            result["jwks"] = _jwks(r, jwt, asymmetric)
    if problems:
        raise ConfigError(problems)
    return result


def _string_list(r: SectionReader, key: str, *, allow_empty: bool = False) -> list[str] | None:
    """A list of non-empty strings; a lone string counts as a list of one (handy in env variables)."""
    value = r.raw(key)
    if value is None:
        default = _DEFAULTS[key]
        return list(default) if default is not None else None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        r.problem(key, f'expected a list of non-empty strings such as ["a", "b"], got {show(value)}')
        return None
    if not value and not allow_empty:
        r.problem(key, "must not be empty")
        return None
    return [v.strip() for v in value]


def _one_or_many(r: SectionReader, key: str) -> str | list[str] | None:
    value = r.raw(key)
    if value is None or isinstance(value, str):
        return r.string(key)  # type: ignore[no-any-return]
    return _string_list(r, key)


def _algorithms(r: SectionReader, jwt: ModuleType) -> list[str]:
    algorithms = _string_list(r, "algorithms")
    if algorithms is None:
        if not r.is_set("algorithms"):
            r.problem("algorithms", 'required: the signing algorithms to accept, e.g. ["RS256"]')
        return []
    known = {name for name in jwt.algorithms.get_default_algorithms() if name.lower() != "none"}
    accepted: list[str] = []
    for alg in algorithms:
        if alg.lower() == "none":
            r.problem("algorithms", "'none' is refused: it would accept unsigned tokens")
        elif alg not in known:
            hint = (
                ""
                if jwt.algorithms.has_crypto
                else f" (asymmetric algorithms need 'cryptography': {INSTALL_HINT})"
            )
            r.problem("algorithms", f"unknown algorithm {show(alg)}; known: {', '.join(sorted(known))}{hint}")
        else:
            accepted.append(alg)
    return accepted


def _secret(r: SectionReader, algorithms: list[str]) -> bytes | None:
    """The HMAC secret, inline or ``@path``. Messages never show it."""
    value = r.raw("secret")
    if not isinstance(value, str):
        r.problem("secret", f"expected a string, got a {type(value).__name__} (the value is not shown)")
        return None
    data = value.encode("utf-8")
    if value.startswith("@"):
        path = Path(value[1:].strip()).expanduser()
        try:
            data = read_small_file(path).strip()
        except FileProblem as e:
            r.problem("secret", f"cannot use the secret file: {e}")
            return None
    for alg in algorithms:
        if len(data) < _HMAC_MIN_BYTES[alg]:
            r.problem(
                "secret", f"{alg} needs a secret of at least {_HMAC_MIN_BYTES[alg]} bytes (RFC 7518 3.2)"
            )
    return data


def _public_key(r: SectionReader, jwt: ModuleType, algorithms: list[str]) -> Any:
    """The verification key, parsed once here rather than by PyJWT on every call.

    Identity providers often publish an X.509 certificate rather than a bare key; PyJWT only
    parses bare keys, so the certificate's public key is taken out first.
    """
    pem = r.pem("public_key")
    if pem is None:
        return None
    if b"PRIVATE KEY" in pem:
        r.problem("public_key", "holds a private key; give the public key (the server only verifies)")
        return None
    material: Any = pem
    if b"-----BEGIN CERTIFICATE" in pem and algorithms:
        from cryptography import x509  # noqa: PLC0415 - with PyJWT[crypto], needed by asymmetric algorithms

        try:
            material = x509.load_pem_x509_certificate(pem).public_key()
        except ValueError as e:
            r.problem("public_key", f"is not a valid X.509 certificate: {e}")
            return None
    key = None
    for alg in algorithms:
        try:
            key = jwt.algorithms.get_default_algorithms()[alg].prepare_key(material)
        except Exception as e:
            r.problem("public_key", f"is not a key for {alg}: {type(e).__name__}")
    return key


def _jwks(
    r: SectionReader, jwt: ModuleType, algorithms: list[str]
) -> dict[str | None, tuple[Any, str | None]]:
    """Keys of a JWKS file by ``kid``; keys not meant for signatures or for other algorithms are skipped."""
    path = Path(str(r.string("jwks_file"))).expanduser()
    try:
        document = json.loads(read_small_file(path).decode("utf-8"))
    except FileProblem as e:
        r.problem("jwks_file", str(e))
        return {}
    except ValueError as e:
        r.problem("jwks_file", f"'{path}' is not valid JSON: {e}")
        return {}
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        r.problem("jwks_file", f"'{path}' is not a JSON Web Key Set (an object with a \"keys\" list)")
        return {}
    keys: dict[str | None, tuple[Any, str | None]] = {}
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            r.problem("jwks_file", f"'{path}': key #{number} is not an object")
            continue
        kid, alg = entry.get("kid"), entry.get("alg")
        skip = None
        if entry.get("use", "sig") != "sig":
            skip = "not a signature key"
        elif alg is not None and algorithms and alg not in algorithms:
            skip = f"algorithm {alg} is not among algorithms"
        if skip is None:
            try:
                key = jwt.PyJWK(entry).key
            except jwt.PyJWTError as e:
                skip = f"unusable: {type(e).__name__}"
        if skip is not None:
            log.warning("jwks_key_skipped", file=str(path), key=number, kid=kid, reason=skip)
            continue
        if kid in keys:
            r.problem("jwks_file", f"'{path}': key id {show(kid)} appears twice")
        keys[kid] = (key, alg)
    if not keys and entries and algorithms:
        r.problem("jwks_file", f"'{path}' holds no key usable with algorithms {', '.join(algorithms)}")
    elif not keys:
        r.problem("jwks_file", f"'{path}' holds no keys")
    elif len(keys) > 1 and None in keys:
        r.problem("jwks_file", f"'{path}': with several keys every key needs a kid")
    return keys
