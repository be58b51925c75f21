"""The server thread's wake-up pipe: how signal handlers, stop() and call counting reach it.

Writing one byte to a pipe is async-signal-safe and never blocks on a lock, so a signal handler can
post to it at any moment; the server thread waits on the read end with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import select
import time

__all__ = ["DRAINED", "FORCE", "IDLE", "STOP", "Wakeup"]

STOP = b"s"  # graceful stop requested
FORCE = b"f"  # stop at once, no drain
IDLE = b"i"  # no call is in flight any more
DRAINED = b"d"  # the Flight listener has shut down


class Wakeup:
    """A self-pipe: writing a byte is async-signal-safe, so signal handlers can use it."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)
        self._closed = False

    def post(self, what: bytes) -> None:
        if self._closed:  # the fd number may already belong to another file
            return
        with contextlib.suppress(OSError):  # full: a stop is pending anyway
            os.write(self._w, what)

    def wait(self, timeout: float | None) -> bytes:
        """The next byte posted, or b"" on timeout."""
        ready, _, _ = select.select([self._r], [], [], timeout)
        return os.read(self._r, 1) if ready else b""

    def close(self) -> None:
        self._closed = True
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def wait_for(self, wanted: tuple[bytes, ...], deadline: float) -> bytes:
        """The first of ``wanted`` posted before the deadline, or b"" when the deadline passed."""
        while (remaining := deadline - time.monotonic()) > 0:
            what = self.wait(remaining)
            if what in wanted:
                return what
        return b""
