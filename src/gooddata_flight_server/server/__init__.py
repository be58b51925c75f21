"""The server: its lifecycle and the subsystems it starts and stops.

``server_main`` holds :class:`GoodDataFlightServer` and :func:`create_server` (the module name is
the original package's), ``drain`` the drain, ``signals`` the signal handlers, ``run`` what the CLI
and Python callers run. The other modules of this package that carry the original's names
(``base``, ``flight_rpc``, ``auth``) only re-export what lives elsewhere, so that code written for
the original keeps importing from where it used to.
"""

from gooddata_flight_server.server.runner import run
from gooddata_flight_server.server.server_main import GoodDataFlightServer, create_server

__all__ = ["GoodDataFlightServer", "create_server", "run"]
