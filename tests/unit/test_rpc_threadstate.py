"""The thread-state hold (``rpc._threadstate``): released on its own thread, deferred from others."""

from __future__ import annotations

import queue
import threading

from gooddata_flight_server.rpc import _threadstate


def test_hold_and_release_on_the_same_thread() -> None:
    before = _threadstate.stranded()
    first = _threadstate.hold()
    second = _threadstate.hold()
    assert first.thread == second.thread, "holds on one thread hold the same thread state"
    _threadstate.release(second)
    _threadstate.release(first)
    assert _threadstate.stranded() == before


def test_a_release_from_another_thread_waits_for_the_holding_thread() -> None:
    """A hold released on another thread is not released there (that would corrupt the interpreter):
    it is counted as stranded until its own thread takes its next hold."""
    holds: queue.Queue[_threadstate.Hold] = queue.Queue()
    go_on = threading.Event()
    after_next_hold: list[int] = []

    def holder() -> None:
        holds.put(_threadstate.hold())
        assert go_on.wait(30)
        again = _threadstate.hold()  # releases what was left for this thread first
        after_next_hold.append(_threadstate.stranded())
        _threadstate.release(again)

    thread = threading.Thread(target=holder)
    thread.start()
    taken = holds.get(timeout=30)
    mine = _threadstate.hold()
    assert taken.thread != mine.thread, "each thread holds its own state"
    _threadstate.release(mine)
    before = _threadstate.stranded()
    _threadstate.release(taken)  # on the wrong thread
    assert _threadstate.stranded() == before + 1
    go_on.set()
    thread.join(30)
    assert after_next_hold == [before]
    assert _threadstate.stranded() == before
