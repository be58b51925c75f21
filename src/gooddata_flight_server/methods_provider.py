"""Finding the methods factory a ``--methods-provider`` names (``pkg.module`` or ``pkg.module:function``).

A module names its factory with the ``@flight_server_methods`` decorator; ``MODULE:FUNCTION`` picks
a function, decorated or not. Every way it can go wrong is a one-line ``LoadError``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, cast

from gooddata_flight_server.loader import LoadError, get_attribute, import_user_module, parse_spec
from gooddata_flight_server.methods import FlightServerMethodsFactory, is_methods_factory

__all__ = ["load_methods_factory"]


def _check_factory_signature(fun: Callable[..., Any], label: str) -> None:
    try:
        signature = inspect.signature(fun)
    except (TypeError, ValueError):
        return  # builtins and some C callables have no signature: trust them
    try:
        signature.bind(object())
    except TypeError:
        raise LoadError(
            f"methods factory '{label}' must take exactly one argument, the ServerContext; "
            f"its signature is {signature}"
        ) from None


def load_methods_factory(spec: str) -> FlightServerMethodsFactory:
    """Find the ``@flight_server_methods`` factory of ``MODULE`` or the named ``MODULE:FUNCTION``."""
    what = "methods provider"
    module, name = parse_spec(spec, what)
    mod = import_user_module(module, what)
    if name is not None:
        fun = get_attribute(mod, name, what)
        if not callable(fun):
            raise LoadError(f"'{module}:{name}' is not a function but {type(fun).__name__}")
        _check_factory_signature(fun, f"{module}:{name}")
        return cast(FlightServerMethodsFactory, fun)
    found: dict[int, tuple[str, Any]] = {}
    for attr, value in vars(mod).items():
        if is_methods_factory(value):
            found.setdefault(id(value), (attr, value))
    if not found:
        raise LoadError(
            f"module '{module}' has no function decorated with @flight_server_methods; "
            f"decorate your factory or name it as '{module}:FUNCTION'"
        )
    if len(found) > 1:
        names = ", ".join(sorted(attr for attr, _ in found.values()))
        raise LoadError(
            f"module '{module}' has several @flight_server_methods functions ({names}); "
            f"choose one as '{module}:FUNCTION'"
        )
    ((attr, fun),) = found.values()
    _check_factory_signature(fun, f"{module}:{attr}")
    return cast(FlightServerMethodsFactory, fun)
