"""Loading the configuration: TOML files, values from code and ``GOODDATA_FLIGHT_*`` variables.

This is the only module that touches Dynaconf and ``os.environ``; everything else receives the
frozen objects built here (and user code gets the Dynaconf object for its own sections).

How a configuration is put together, and why:

- Config files are TOML (``.yaml``/``.yml`` and ``.json`` files are read too, as Dynaconf reads them
  for the original package). We read and merge them ourselves rather than through Dynaconf's
  ``settings_files`` so that a missing file, a directory, a FIFO or a syntax error is reported
  against that file, so that a relative name is never searched for in parent directories, and so
  that no ``dynaconf_hooks.py`` or ``*.local.toml`` next to a file is picked up behind the user's back.
- Later files override earlier ones key by key: tables merge recursively, every other value
  (lists included) is replaced. Dynaconf's own ``merge_enabled`` would concatenate lists, so a
  token list set in the environment would be appended to the one in a file instead of replacing it.
  Values given in code (``values=``, what ``testing.running_server`` passes) merge last.
- The merged values are loaded into a fresh ``Dynaconf`` and then the environment is applied on top
  (``GOODDATA_FLIGHT_{SECTION}__{KEY}``, values parsed as TOML; nested keys merge into tables).
  Values go in through ``update`` rather than as constructor arguments, so a section may have any
  name, even one Dynaconf uses for an option of its own (``[redis]``, ``[env]``, ``[secrets]``).
  Dynaconf's own value tokens (``@format``, ``@int``, ``@read_file``, ``@none`` ...) keep working in
  both places.
- ``@/path/to/file.pem`` is our notation for TLS material. Dynaconf only rewrites a value whose
  first word is one of its tokens, so ``@`` followed by a path reaches us intact from files and env.
- ``[server]`` becomes a :class:`ServerConfig`, which validates itself; unknown keys are warnings
  with a "did you mean" hint (the original package ignores them, so configs written for it load).
- A fresh Dynaconf is built on every call: many servers may run in one process and nothing is
  cached between them. Nothing happens at import time.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import structlog
from dynaconf import Dynaconf
from dynaconf.loaders import env_loader

from gooddata_flight_server._files import FileProblem, read_small_file
from gooddata_flight_server._settings_parse import ENV_PREFIX, show, suggest
from gooddata_flight_server.settings import (
    SERVER_SECTION,
    ConfigError,
    OtelConfig,
    ServerConfig,
    config_warnings,
    setting_specs,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # Dynaconf vendors tomli as tomllib; reusing it avoids a dependency just for Python 3.10
    from dynaconf.vendor import tomllib

__all__ = ["LoadedSettings", "load_settings", "read_settings", "settings_from"]

log = structlog.get_logger(__name__)

ConfigFiles = Sequence[str | os.PathLike[str]]


class LoadedSettings(NamedTuple):
    settings: Dynaconf
    """Every loaded setting, for user code: ``settings.get("my_service.opt1")``."""
    config: ServerConfig
    warnings: tuple[str, ...]
    """Settings accepted but probably not meant (unknown keys, ...); the server logs them at startup."""


def read_settings(
    config_files: ConfigFiles = (), values: Mapping[str, Mapping[str, Any]] | None = None
) -> LoadedSettings:
    """Read the config files, ``values`` and the environment afresh; validate ``[server]``.

    Raises ConfigError listing every problem: unreadable files first (nothing else is checked
    then, to avoid a cascade of problems caused by settings that were never read), otherwise
    every invalid ``[server]`` setting at once.
    """
    settings = settings_from(config_files, values)
    raw_section = _evaluate(settings, SERVER_SECTION)
    problems: list[str] = []
    section = _plain_section(raw_section, problems)
    warnings: list[str] = []
    config = _server_config(section, problems, warnings)
    if problems or config is None:
        raise ConfigError(problems)
    warnings += config_warnings(config)
    return LoadedSettings(settings, config, tuple(warnings))


def load_settings(
    config_files: ConfigFiles = (), values: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[Dynaconf, ServerConfig]:
    """Like :func:`read_settings` (the original package's ``read_config``), logging the warnings."""
    loaded = read_settings(config_files, values)
    for warning in loaded.warnings:
        log.warning("config_warning", problem=warning)
    return loaded.settings, loaded.config


def settings_from(
    config_files: ConfigFiles = (), values: Mapping[str, Mapping[str, Any]] | None = None
) -> Dynaconf:
    """The Dynaconf object over the files, ``values`` and the environment; ConfigError for bad files."""
    if isinstance(config_files, (str, os.PathLike)):  # a lone path is a common slip; str is a Sequence
        config_files = (config_files,)
    merged, problems = _read_config_files(config_files)
    if values:
        problems += _reserved_keys("values", values)
        _merge_into(merged, values)
    if problems:
        raise ConfigError(problems)
    settings = Dynaconf(envvar_prefix=ENV_PREFIX, environments=False, load_dotenv=False)
    try:
        settings.update({key.upper(): value for key, value in merged.items()}, tomlfy=False)
        env_loader.load(settings)  # the environment wins over files and values
    except Exception as e:  # Dynaconf raises assorted types for a bad @token (parse, format, type errors)
        raise _cannot_load(e) from None
    return settings


def _evaluate(settings: Dynaconf, section: str) -> Any:
    try:
        return settings.get(section)  # evaluates lazy value tokens (@format, @jinja)
    except Exception as e:
        raise _cannot_load(e) from None


def _cannot_load(error: Exception) -> ConfigError:
    """A Dynaconf value token that failed; the exception's text may quote a value, and values may
    be secrets: name the suspects only."""
    suspects = sorted(
        k for k, v in os.environ.items() if k.startswith(f"{ENV_PREFIX}_") and v.lstrip()[:1] == "@"
    )
    where = f"; variables with @tokens: {', '.join(suspects)}" if suspects else ""
    what = f"cannot load settings ({type(error).__name__})"
    return ConfigError([f"{what}: check Dynaconf @tokens in files and variables{where}"])


def _read_config_files(paths: Iterable[str | os.PathLike[str]]) -> tuple[dict[str, Any], list[str]]:
    merged: dict[str, Any] = {}
    problems: list[str] = []
    for path in paths:
        suffix = Path(path).suffix.lower()
        if suffix in _UNSUPPORTED:
            problems.append(f"config file '{path}': {suffix} files are not supported; use TOML, YAML or JSON")
            continue
        parse, kind = _PARSERS.get(suffix, (tomllib.loads, "TOML"))
        try:
            data = parse(read_small_file(path).decode("utf-8"))
        except FileProblem as e:
            problems.append(f"config file {e}")
            continue
        except UnicodeDecodeError as e:
            problems.append(f"config file '{path}': is not UTF-8 text: {e.reason}")
            continue
        except Exception as e:  # each parser has error types of its own; the message says where
            problems.append(f"config file '{path}': invalid {kind}: {' '.join(str(e).split())}")
            continue
        if data is None:  # an empty YAML document
            data = {}
        if not isinstance(data, Mapping):
            problems.append(f"config file '{path}': expected a table of sections, got {type(data).__name__}")
            continue
        problems += _reserved_keys(f"config file '{path}'", data)
        _merge_into(merged, data)
    return merged, problems


def _yaml(text: str) -> Any:
    # what Dynaconf reads YAML with, loaded on demand (by name: mypy cannot parse the vendored copy)
    yaml = importlib.import_module("dynaconf.vendor.ruamel.yaml")
    return yaml.safe_load(text)


_PARSERS: Mapping[str, tuple[Callable[[str], Any], str]] = MappingProxyType(
    {".json": (json.loads, "JSON"), ".yaml": (_yaml, "YAML"), ".yml": (_yaml, "YAML")}
)
_UNSUPPORTED = frozenset({".py", ".ini", ".env", ".cfg", ".conf"})


def _reserved_keys(where: str, data: Mapping[str, Any]) -> list[str]:
    """Keys that name Dynaconf's own options (``*_FOR_DYNACONF``, ``DYNACONF_*``) would reconfigure it."""
    return [
        f"{where}: top-level key '{key}' is one of Dynaconf's own options, not a setting; "
        "put settings in a section such as [my_service]"
        for key in data
        if "DYNACONF" in key.upper()
    ]


def _merge_into(base: dict[str, Any], update: Mapping[str, Any]) -> None:
    """Tables merge recursively; anything else replaces. Keys match case-insensitively like Dynaconf."""
    for key, value in update.items():
        existing = next((k for k in base if k.lower() == key.lower()), key)
        if isinstance(value, Mapping) and isinstance(base.get(existing), dict):
            _merge_into(base[existing], value)
        else:
            base.pop(existing, None)
            base[key] = _copy_tables(value)


def _copy_tables(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _copy_tables(item) for key, item in value.items()}
    return value


def _plain_section(raw: Any, problems: list[str]) -> dict[str, Any]:
    """[server] as a plain dict with lowercase keys (env adds them upper-case), lazy values evaluated."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append(f"{SERVER_SECTION}: expected a table, got {show(raw)} (env {ENV_PREFIX}_SERVER)")
        return {}
    section: dict[str, Any] = {}
    for key in list(raw.keys()):
        name = str(key).lower()
        try:
            value = raw[key]
        except Exception as e:  # a Dynaconf @format/@jinja value that cannot be evaluated
            problems.append(f"{SERVER_SECTION}.{name}: cannot evaluate value: {e}")
            continue
        if value is not None and not (isinstance(value, str) and not value.strip()):
            section[name] = value  # absent, @none and blank all mean "not set": the default applies
    return section


def _arguments(cls: type[Any], section: Mapping[str, Any]) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    for field, spec in setting_specs(cls):
        given = [section.get(key) for key in spec.keys]
        if any(value is not None for value in given):
            arguments[field.name] = given[0] if len(given) == 1 else tuple(given)
    return arguments


def _server_config(
    section: Mapping[str, Any], problems: list[str], warnings: list[str]
) -> ServerConfig | None:
    known = {key for cls in (ServerConfig, OtelConfig) for _, spec in setting_specs(cls) for key in spec.keys}
    for key in section:
        if key not in known:
            warnings.append(
                f"{SERVER_SECTION}.{key}: unknown setting, ignored{suggest(key, known)} "
                f"(env {ENV_PREFIX}_{SERVER_SECTION.upper()}__{key.upper()})"
            )
    try:
        otel = OtelConfig(**_arguments(OtelConfig, section))
    except ConfigError as e:
        problems += e.problems
        otel = OtelConfig()
    try:
        return ServerConfig(**_arguments(ServerConfig, section), otel_config=otel)
    except ConfigError as e:
        problems += e.problems
        return None
