"""Exceptions that stop the server from starting, as the original package names them.

A methods factory (or anything else that runs during startup) may raise
:class:`ServerStartupInterrupted` with a message to stop the startup; the CLI prints the message on
one line and exits with code 3. :class:`FlightMethodsModuleError` says the methods provider could
not be loaded (the CLI exits with code 2).
"""

from __future__ import annotations

__all__ = ["FlightMethodsModuleError", "ServerStartupInterrupted"]


class ServerStartupInterrupted(Exception):
    """Startup cannot go on; the message says why."""


class FlightMethodsModuleError(ServerStartupInterrupted):
    """The module with the Flight methods cannot be loaded, or holds no usable factory."""
