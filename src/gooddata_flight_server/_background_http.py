"""Running a small stdlib HTTP server (health checks, metrics) on a thread of its own."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Callable

__all__ = ["BackgroundHttp", "bind_or_explain"]

_POLL_INTERVAL_SEC = 0.05  # how soon serve_forever notices a shutdown request (stops stay quick)


def bind_or_explain(
    what: str, host: str, port: int, bind: Callable[[], socketserver.TCPServer]
) -> socketserver.TCPServer:
    """Bind with ``bind()``; a failure names the endpoint and the address."""
    try:
        return bind()
    except OSError as e:
        raise OSError(f"cannot bind the {what} endpoint to {host}:{port}: {e.strerror}") from e


class BackgroundHttp:
    """``serve_forever`` on a daemon thread from construction until :meth:`stop`."""

    def __init__(self, httpd: socketserver.TCPServer, thread_name: str) -> None:
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, args=(_POLL_INTERVAL_SEC,), name=thread_name, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
