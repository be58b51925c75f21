"""Compatibility: the original package's module path; see ``gooddata_flight_server.methods`` and
``.methods_provider``.
"""

from __future__ import annotations

import importlib.util

from gooddata_flight_server.methods import FlightServerMethodsFactory, flight_server_methods
from gooddata_flight_server.methods_provider import load_methods_factory

__all__ = ["flight_server_methods", "get_methods_factory"]


def get_methods_factory(module_name: str, root: str | None = None) -> FlightServerMethodsFactory:
    """The one ``@flight_server_methods`` factory of a module; ``root`` resolves a relative name.

    Raises ``FlightMethodsModuleError`` (``LoadError``) saying what is wrong.
    """
    return load_methods_factory(importlib.util.resolve_name(module_name, root) if root else module_name)
