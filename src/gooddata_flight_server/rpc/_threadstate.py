"""Keeping one Python thread state per gRPC thread for the thread's lifetime.

pyarrow enters Python from gRPC's threads with ``PyGILState_Ensure``/``Release`` around every
callback (each middleware ``start_call``, the handler, ``call_completed``, ...). gRPC's threads have
no Python thread state of their own, so each callback creates one and destroys it again, and the
first Python frame of a new thread state maps a fresh frame stack chunk (``mmap``/``munmap``, a TLB
shootdown on the other core). With several callbacks a call, that dominated the server's CPU per
small call (see benchmarks/README.md). One extra ``PyGILState_Ensure`` on the first callback of a
thread, never released, keeps its thread state alive, and later callbacks reuse it.

The price: context variables and thread-locals would now outlive a call on that thread, so every
handler runs in a fresh ``contextvars.Context`` (see ``rpc/service.py``); and a gRPC thread that
ends keeps its (small) thread state, which gRPC's thread reuse bounds.
"""

from __future__ import annotations

import ctypes
import threading

__all__ = ["pin_thread_state"]

_pinned = threading.local()
_ensure = ctypes.pythonapi.PyGILState_Ensure
_ensure.restype = ctypes.c_int
_ensure.argtypes = []


def pin_thread_state() -> None:
    """Keep the current thread's Python thread state after pyarrow's callback releases it."""
    if getattr(_pinned, "done", False):
        return
    _ensure()  # the GIL is held already: this only raises the thread state's use count
    _pinned.done = True
