"""Loading user code named as ``pkg.module`` or ``pkg.module:name``.

Each way loading can fail has its own one-line message, because these are user errors that the
CLI prints without a traceback: a name that is not a module path, a module that is not there, a
module that fails while importing (that error is shown), a missing attribute, nothing or several
candidates found.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from types import ModuleType
from typing import Any, TypeVar

from gooddata_flight_server.exceptions import FlightMethodsModuleError

__all__ = ["LoadError", "get_attribute", "import_user_module", "load_subclass", "parse_spec"]

_T = TypeVar("_T")

_MODULE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class LoadError(FlightMethodsModuleError):
    """User code could not be loaded; the message says why in one line.

    A ``FlightMethodsModuleError`` (the original package's name) for code that catches that.
    """


def parse_spec(spec: str, what: str) -> tuple[str, str | None]:
    """Split ``pkg.module[:name]``, refusing anything that cannot be a module path."""
    module, sep, name = spec.strip().partition(":")
    if not _MODULE_PATH.match(module) or (sep and not _IDENTIFIER.match(name)):
        raise LoadError(f"invalid {what} '{spec}': expected MODULE or MODULE:NAME, e.g. my_service.main")
    return module, (name if sep else None)


def import_user_module(module: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if module == missing or module.startswith(missing + "."):
            raise LoadError(
                f"{what} module '{module}' not found: is it installed, or on the path "
                f"(the current directory is: {sys.path[0] or '.'})?"
            ) from e
        raise LoadError(f"importing {what} module '{module}' failed: {type(e).__name__}: {e}") from e
    except Exception as e:
        raise LoadError(f"importing {what} module '{module}' failed: {type(e).__name__}: {e}") from e


def get_attribute(mod: ModuleType, name: str, what: str) -> Any:
    try:
        return getattr(mod, name)
    except AttributeError:
        raise LoadError(f"{what} module '{mod.__name__}' has no attribute '{name}'") from None


def _is_concrete(cls: type) -> bool:
    return not inspect.isabstract(cls)


def _named_subclass(mod: ModuleType, name: str, base: type[_T], what: str) -> type[_T]:
    value = get_attribute(mod, name, what)
    label = f"{mod.__name__}:{name}"
    if not isinstance(value, type):
        raise LoadError(f"'{label}' is not a class but {type(value).__name__}")
    if not issubclass(value, base):
        raise LoadError(f"'{label}' is not a {base.__name__}: it must subclass {base.__name__}")
    if not _is_concrete(value):
        missing = ", ".join(sorted(getattr(value, "__abstractmethods__", ())))
        raise LoadError(f"'{label}' is abstract: it does not implement {missing}")
    return value


def load_subclass(spec: str, base: type[_T], what: str) -> type[_T]:
    """Find the concrete ``base`` subclass named by ``MODULE:CLASS``, or the single one MODULE defines.

    Without ``:CLASS`` only classes defined in MODULE itself count (``cls.__module__``), so a base
    class or a helper imported into it is never picked by accident; abstract classes do not count
    either, so a module may hold its own abstract base next to the one concrete class.
    """
    module, name = parse_spec(spec, what)
    mod = import_user_module(module, what)
    if name is not None:
        return _named_subclass(mod, name, base, what)
    defined: dict[int, tuple[str, type[_T]]] = {}
    imported: set[str] = set()
    for attr, value in vars(mod).items():
        if not isinstance(value, type) or value is base or not issubclass(value, base):
            continue
        if value.__module__ != mod.__name__:
            imported.add(attr)
        else:
            defined.setdefault(id(value), (attr, value))
    concrete = sorted(
        ((attr, cls) for attr, cls in defined.values() if _is_concrete(cls)), key=lambda item: item[0]
    )
    if not concrete:
        if defined:
            abstract = ", ".join(sorted(attr for attr, _ in defined.values()))
            detail = f"defines only abstract {base.__name__} classes ({abstract})"
        elif imported:
            detail = f"defines no {base.__name__} subclass, it only imports {', '.join(sorted(imported))}"
        else:
            detail = f"defines no {base.__name__} subclass"
        raise LoadError(f"{what} module '{module}' {detail}; define one or name it as '{module}:CLASS'")
    if len(concrete) > 1:
        names = ", ".join(attr for attr, _ in concrete)
        raise LoadError(
            f"{what} module '{module}' defines several {base.__name__} subclasses ({names}); "
            f"choose one as '{module}:CLASS'"
        )
    return concrete[0][1]
