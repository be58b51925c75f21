"""SIGINT and SIGTERM for a server: handlers that only count, restored when the server is done.

A handler runs on the main thread between two bytecodes, possibly while that thread holds a lock
the handler would need; so it only increments a counter. The server's threads look at the counter
(``count``): one signal asks for a graceful stop, a second one forces it. Handlers are installed
only from the main thread (Python allows no other) and the previous ones come back on ``restore``,
or, when the server is already done and nobody restored them, at the next signal, which is then
delivered to whoever had it before.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

__all__ = ["Signals"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Signals:
    """Usable as a context manager (``with Signals() as signals: ...``) or through install/restore."""

    def __init__(self) -> None:
        self.count = 0
        self.done = False  # set by the owner once it no longer cares: the next signal restores
        self._previous: dict[int, Any] = {}

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def install(self) -> bool:
        """Install the handlers; False (and nothing done) off the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for signum in _SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        return True

    def restore(self) -> None:
        """Put the previous handlers back; on the main thread only (Python's rule), else nothing."""
        if threading.current_thread() is not threading.main_thread():
            return
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.done:
            # done, but nobody restored the handlers (the wait ran off the main thread): restore
            # them now and deliver the signal to whoever had it before
            self.restore()
            signal.raise_signal(signum)
            return
        self.count += 1

    def __enter__(self) -> Signals:
        self.install()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.done = True
        self.restore()
