"""Rate limits for log events that clients can cause at will (auth failures, refused calls, failing tasks).

A client sending thousands of bad tokens a second must not turn the server log into a flood: of
each kind of event at most ``burst`` lines are written per ``interval_sec``; the others are only
counted, and the next line that gets through says how many were left out (``suppressed=N``).
Metrics still count every event: the limit is for the log only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["LogLimiter"]


class LogLimiter:
    """At most ``burst`` events per kind (any hashable key) and window of ``interval_sec``.

    :meth:`admit` answers None for an event to leave out, or how many events of its kind were left
    out since the last one written (usually 0). Kinds must be a small fixed set (event name plus a
    reason code, say): one small record is kept per kind.
    """

    def __init__(
        self, burst: int = 20, interval_sec: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if burst < 1 or interval_sec <= 0:
            raise ValueError("burst must be at least 1 and interval_sec more than 0")
        self._burst = burst
        self._interval = interval_sec
        self._clock = clock
        self._lock = threading.Lock()
        # kind -> [start of the window, events written in it, events left out since the last written]
        self._windows: dict[Hashable, list[float]] = {}

    def admit(self, kind: Hashable) -> int | None:
        now = self._clock()
        with self._lock:
            window = self._windows.get(kind)
            if window is None or now - window[0] >= self._interval:
                suppressed = 0 if window is None else int(window[2])
                self._windows[kind] = [now, 1, 0]
                return suppressed
            if window[1] < self._burst:
                window[1] += 1
                suppressed, window[2] = int(window[2]), 0
                return suppressed
            window[2] += 1
            return None

    def log(self, kind: Hashable, method: Callable[..., Any], event: str, **fields: Any) -> None:
        """``method(event, **fields)`` (a structlog logger's ``warning``, say) unless left out;
        ``suppressed=N`` is added when N earlier events of this kind were left out."""
        suppressed = self.admit(kind)
        if suppressed is None:
            return
        if suppressed:
            fields["suppressed"] = suppressed
        method(event, **fields)
