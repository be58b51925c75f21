"""Holding a gRPC thread's Python thread state for the length of a call: a workaround, switchable.

Why: pyarrow enters Python around every callback of a call (the middleware's ``start_call``, the
handler, each batch of a stream, ``call_completed``) with ``PyGILState_Ensure``/``Release``. gRPC's
threads have no Python thread state of their own, so each callback creates one and destroys it
again, and the first frame of each new state maps a fresh frame stack (``mmap``/``munmap``, a TLB
shootdown on the other core). Holding one extra ``PyGILState_Ensure`` from the call's first
callback to its last lets every callback of the call share one thread state. Measured in
benchmarks/README.md ("thread state held per call"); switched by the ``hold_thread_state`` setting.

The rules that keep it safe:

- taken only once nothing can reject the call any more, so pyarrow is bound to end the call (and
  the edge to release it); a state kept for good would leak, as gRPC retires its threads;
- released only on the thread that took it: ``PyGILState_Release`` on another thread would corrupt
  the interpreter's state. gRPC's sync server ends a call on the thread that started it (a test
  checks it); a release on another thread is counted, and the hold is released the next time its
  own thread starts a call, or leaks if that thread never does (``stranded`` tells how many).

"Its own thread" is told by the thread state itself (``PyThreadState_Get``): the held state stays
alive while held, so no other thread can have it as its current state. That costs one foreign call
and no system call (``threading.get_native_id`` is a ``gettid`` system call each time, measured at
17 % of the GIL-holding time of small calls).
"""

from __future__ import annotations

import ctypes
import threading

__all__ = ["Hold", "hold", "release", "stranded"]

_ensure = ctypes.pythonapi.PyGILState_Ensure
_ensure.argtypes = []
_ensure.restype = ctypes.c_int
_release = ctypes.pythonapi.PyGILState_Release
_release.argtypes = [ctypes.c_int]
_release.restype = None
_current = ctypes.pythonapi.PyThreadState_Get
_current.argtypes = []
_current.restype = ctypes.c_void_p

_lock = threading.Lock()
_orphans: dict[int, list[int]] = {}  # thread state address -> holds released from another thread
_stranded = 0


class Hold:
    """One call's hold on its thread's state: the ``PyGILState_STATE`` and the held thread state."""

    __slots__ = ("state", "thread")

    def __init__(self, state: int, thread: int) -> None:
        self.state = state
        self.thread = thread


def hold() -> Hold:
    """Take a hold on this thread's Python thread state (release it with :func:`release`)."""
    state = _ensure()
    thread: int = _current()
    if _orphans:  # rare: a hold of this thread was "released" from another one
        _release_orphans(thread)
    return Hold(state, thread)


def release(taken: Hold) -> None:
    """Release a hold; on another thread than the one that took it, defer it to that thread."""
    global _stranded  # noqa: PLW0603 - the one process-wide counter of this workaround
    if taken.thread == _current():
        _release(taken.state)
        return
    with _lock:
        _orphans.setdefault(taken.thread, []).append(taken.state)
        _stranded += 1


def _release_orphans(thread: int) -> None:
    global _stranded  # noqa: PLW0603
    with _lock:
        states = _orphans.pop(thread, [])
        _stranded -= len(states)
    for state in reversed(states):
        _release(state)


def stranded() -> int:
    """Holds released from another thread and not yet released on their own (a leak if it stays)."""
    return _stranded
