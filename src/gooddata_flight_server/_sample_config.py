"""Renders sample-config.toml from the settings declared on the config objects.

``python -m gooddata_flight_server._sample_config > sample-config.toml`` (``make sample-config``)
regenerates the file; a test keeps it equal to what this renders, so the documentation of a
setting lives in one place: its field in ``settings.py``.
"""

from __future__ import annotations

import dataclasses
import textwrap

from gooddata_flight_server._settings_parse import env_var_name
from gooddata_flight_server.settings import (
    SERVER_SECTION,
    OtelConfig,
    ServerConfig,
    SettingSpec,
    setting_specs,
)

__all__ = ["render"]

_WIDTH = 100

_INTRO = """\
# gooddata-flight-server: every server setting, its default and its environment variable.
#
# Copy this file as a starting point and uncomment what you need; as shipped, every setting is
# commented out, so loading this file changes nothing.
#
# How configuration is assembled:
#
# - Pass any number of TOML files (`--config a.toml b.toml`). Later files override earlier ones
#   key by key: tables merge, other values (lists included) are replaced.
# - Environment variables override files. The name is GOODDATA_FLIGHT_{SECTION}__{SETTING}
#   (note the double underscore), e.g. GOODDATA_FLIGHT_SERVER__LISTEN_PORT=17002. Values are read
#   as TOML, so `17002` is a number, `true` a boolean and `'["a","b"]'` a list.
# - An empty value counts as "not set" (so the environment can clear a value a file set).
# - Booleans accept true/false, yes/no, on/off and 1/0 in any letter case.
# - Unknown settings in [server] are logged as warnings with the closest known name, so a typo
#   does not go unnoticed (configurations written for the original package still load).
# - The same settings can be given in Python: gf.ServerConfig(listen_port=0, task_threads=4),
#   where fields carry the names below (TLS material as tls_cert_and_key / tls_root_cert, the
#   otel_* settings in gf.OtelConfig).
# - Your service can keep its own settings in its own section, e.g. [my_service] with opt1 read
#   through ctx.settings.get("my_service.opt1") (env GOODDATA_FLIGHT_MY_SERVICE__OPT1).
"""

_GROUPS = (
    "Network",
    "TLS",
    "Authentication",
    "Long-running tasks",
    "Health checks and metrics",
    "Housekeeping and shutdown",
    "Logging",
    "OpenTelemetry tracing",
)

_GROUP_NOTES = {
    "TLS": (
        'Certificates and keys are PEM: either the PEM text itself, or "@" followed by the path of a PEM '
        "file (a relative path is relative to the server's working directory). They are read only when "
        "use_tls (and, for the root certificate, use_mtls) is on; a missing file, or a path that is not a "
        "regular file of at most 4 MiB, is a configuration error. Never commit private keys."
    ),
}

_TOKEN_SECTIONS = """\
[enumerated_tokens]

# Secret tokens accepted by the built-in EnumeratedTokenVerification strategy, which token
# authentication uses unless token_verification names another one. Token authentication with
# this strategy and no tokens fails at startup. Prefer the environment variable: never commit
# secrets to version control.
# default: [] (no tokens)
# env: GOODDATA_FLIGHT_ENUMERATED_TOKENS__TOKENS='["token-1", "token-2"]'
# tokens = ["token-1", "token-2"]

[jwt_tokens]

# Settings of the built-in JwtTokenVerification strategy, used when token_verification =
# "JwtTokenVerification" (needs the jwt extra: pip install 'gooddata-flight-server[jwt]').
# Clients send `Authorization: Bearer <jwt>`; the decoded claims become token_data, which handlers
# read through context.get_middleware("auth_token").token_data. All settings are checked at startup
# and every problem is reported at once.

# Signing algorithms to accept, e.g. RS256, PS256, ES256, EdDSA, or HS256/HS384/HS512 with a
# secret. Required; "none" is refused. A public key or key set only verifies asymmetric algorithms
# and a secret only HMAC ones, so one key can never be abused as the other.
# default: none (required)
# env: GOODDATA_FLIGHT_JWT_TOKENS__ALGORITHMS='["RS256"]'
# algorithms = ["RS256"]

# Set exactly one of public_key, jwks_file and secret.

# The issuer's public key or X.509 certificate: inline PEM, or "@" followed by the path of a PEM file.
# default: not set
# env: GOODDATA_FLIGHT_JWT_TOKENS__PUBLIC_KEY
# public_key = "@/etc/gooddata-flight-server/jwt-issuer.pem"

# A JSON Web Key Set file ({"keys": [...]}); the `kid` header of each token picks its key (a token
# without kid is accepted only when the set holds a single key). Keys with "use" other than "sig"
# or an "alg" not listed in algorithms are skipped. The file is read at startup.
# default: not set
# env: GOODDATA_FLIGHT_JWT_TOKENS__JWKS_FILE
# jwks_file = "/etc/gooddata-flight-server/jwks.json"

# Shared secret for HS256/HS384/HS512, at least 32/48/64 bytes long; inline, or "@" followed by
# the path of a file holding it. Prefer the environment variable: never commit secrets.
# default: not set
# env: GOODDATA_FLIGHT_JWT_TOKENS__SECRET
# secret = "@/run/secrets/jwt-hmac-secret"

# Accepted issuer(s): the `iss` claim must be present and equal to it (or to one of a list).
# default: not set (iss is not checked)
# env: GOODDATA_FLIGHT_JWT_TOKENS__ISSUER
# issuer = "https://idp.example.com/"

# Accepted audience(s): the `aud` claim must name it (or one of a list). When not set, a token
# that carries an `aud` claim is refused: it was meant for someone in particular.
# default: not set
# env: GOODDATA_FLIGHT_JWT_TOKENS__AUDIENCE
# audience = "my-data-service"

# Claims every token must carry. `exp` and `nbf` are enforced whenever present; listing `exp` here
# (the default) also refuses tokens that never expire. Set [] to accept them.
# default: ["exp"]
# env: GOODDATA_FLIGHT_JWT_TOKENS__REQUIRED_CLAIMS='["exp", "sub"]'
# required_claims = ["exp", "sub"]

# Seconds of clock skew tolerated when checking exp, nbf and iat (0 or more).
# default: 0
# env: GOODDATA_FLIGHT_JWT_TOKENS__LEEWAY_SEC
# leeway_sec = 30
"""


def _comment(text: str) -> list[str]:
    return textwrap.wrap(
        text, _WIDTH - 2, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False
    ) or ["#"]


def _entries(spec: SettingSpec, default: object) -> list[str]:
    lines: list[str] = []
    for index, key in enumerate(spec.keys):
        example = spec.examples[index] if index < len(spec.examples) else None
        shown_default = spec.default_doc or spec.kind.toml(default if len(spec.keys) == 1 else None)
        lines += [
            *_comment(spec.docs[index]),
            f"# default: {shown_default}",
            f"# env: {env_var_name(SERVER_SECTION, key)}",
            f"# {key} = {example or spec.kind.toml(default)}",
            "",
        ]
    return lines


def render() -> str:
    """The whole sample-config.toml."""
    by_group: dict[str, list[str]] = {group: [] for group in _GROUPS}
    for cls in (ServerConfig, OtelConfig):
        for field, spec in setting_specs(cls):
            default = field.default if field.default is not dataclasses.MISSING else None
            by_group[spec.group] += _entries(spec, default)
    lines = [_INTRO, f"[{SERVER_SECTION}]", ""]
    for group in _GROUPS:
        lines.append(f"# --- {group} ".ljust(_WIDTH - 1, "-"))
        note = _GROUP_NOTES.get(group)
        if note:
            lines += ["#", *_comment(note)]
        lines += ["", *by_group[group]]
    return "\n".join(lines) + "\n" + _TOKEN_SECTIONS


if __name__ == "__main__":
    print(render(), end="")  # noqa: T201 - the output is the file
