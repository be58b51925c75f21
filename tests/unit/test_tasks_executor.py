"""ThreadTaskExecutor without sockets: scheduling, outcomes, errors, expiry, shutdown, metrics."""

from __future__ import annotations

import contextvars
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from contextlib import contextmanager
from dataclasses import dataclass

import prometheus_client
import pyarrow
import pyarrow.flight
import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gooddata_flight_server.errors import ErrorCode, ErrorInfo
from gooddata_flight_server.tasks import (
    FlightDataTaskResult,
    ListFlightsTaskResult,
    Task,
    TaskError,
    TaskExecutionResult,
    TaskResult,
    TaskWaitTimeoutError,
    ThreadTaskExecutor,
)
from tests.waiting import wait_until

_TABLE = pyarrow.table({"col1": [1, 2, 3]})
_WAIT = 10.0  # generous bound for events that must happen; tests finish long before it


@dataclass(frozen=True)
class _Config:
    task_threads: int = 2
    task_close_threads: int = 1
    task_result_ttl_sec: float = 60.0
    task_queue_size: int = 0
    task_result_max_count: int = 0
    task_result_max_bytes: int = 0


@contextmanager
def _executor(stop_wait: float = 5.0, **config: float) -> Iterator[ThreadTaskExecutor]:
    executor = ThreadTaskExecutor(config=_Config(**config), stop_wait=lambda: stop_wait)
    executor.start()
    try:
        yield executor
    finally:
        executor.stop()


class _FnTask(Task):
    """Runs a function of the task itself."""

    def __init__(self, fn: Callable[[Task], object], cmd: bytes = b"cmd", **kwargs: object) -> None:
        super().__init__(cmd, **kwargs)  # type: ignore[arg-type]
        self._fn = fn

    def run(self) -> TaskResult | TaskError:
        return self._fn(self)  # type: ignore[return-value]


class _Blocking(Task):
    """Runs until released; cooperative (checks cancellation) unless told otherwise."""

    def __init__(self, cooperative: bool = True, on_close: Callable[[], None] | None = None) -> None:
        super().__init__(b"blocking")
        self.started = threading.Event()
        self.release = threading.Event()
        self.cancel_calls = 0
        self._cooperative = cooperative
        self._on_close = on_close

    def on_task_cancel(self) -> None:
        self.cancel_calls += 1
        if self._cooperative:
            self.release.set()

    def run(self) -> TaskResult | TaskError:
        self.started.set()
        self.release.wait(_WAIT)
        if self._cooperative:
            self.check_cancelled()
        return FlightDataTaskResult.for_table(_TABLE, on_close=self._on_close)


def _table_task(on_close: Callable[[], None] | None = None, **kwargs: object) -> _FnTask:
    return _FnTask(lambda _: FlightDataTaskResult.for_table(_TABLE, on_close=on_close), **kwargs)


def _done(executor: ThreadTaskExecutor, task: Task) -> TaskExecutionResult:
    outcome = executor.wait_for_result(task.task_id, timeout=_WAIT)
    assert outcome is not None
    return outcome


def _error(executor: ThreadTaskExecutor, task: Task) -> TaskError:
    outcome = _done(executor, task)
    assert outcome.error is not None, outcome
    return outcome.error


def _sample(name: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name) or 0.0


# -- scheduling and waiting ---------------------------------------------------------------------------


def test_submit_and_wait_returns_result_with_task_id_and_cmd() -> None:
    """A finished task's outcome carries its result, task id and command."""
    with _executor() as executor:
        task = _table_task(cmd=b"my command")
        executor.submit(task)
        outcome = _done(executor, task)
        assert (outcome.task_id, outcome.cmd, outcome.cancelled, outcome.error) == (
            task.task_id,
            b"my command",
            False,
            None,
        )
        assert isinstance(outcome.result, FlightDataTaskResult)
        assert executor.wait_for_result(task.task_id) is outcome  # waiting again after the end


def test_tasks_start_in_fifo_order() -> None:
    """With one worker, queued tasks run in the order they were submitted."""
    order: list[str] = []
    with _executor(task_threads=1) as executor:
        blocker = _Blocking()
        executor.submit(blocker)
        assert blocker.started.wait(_WAIT)
        tasks = [
            _FnTask(lambda t: order.append(t.cmd.decode()) or ListFlightsTaskResult([]), cmd=c.encode())
            for c in "abcde"
        ]
        for task in tasks:
            executor.submit(task)
        blocker.release.set()
        for task in tasks:
            _done(executor, task)
    assert order == list("abcde")


def test_tasks_run_concurrently_up_to_task_threads() -> None:
    """task_threads tasks run at the same time."""
    with _executor(task_threads=3) as executor:
        tasks = [_Blocking() for _ in range(3)]
        for task in tasks:
            executor.submit(task)
        assert all(task.started.wait(_WAIT) for task in tasks)
        for task in tasks:
            task.release.set()


def test_wait_for_unknown_task_is_none() -> None:
    """wait_for_result of an id the executor never saw returns None."""
    with _executor() as executor:
        assert executor.wait_for_result("nope") is None


def test_wait_timeout_raises_with_task_id_and_cmd() -> None:
    """A wait that times out raises TaskWaitTimeoutError naming the task; the task goes on."""
    with _executor() as executor:
        task = _Blocking()
        executor.submit(task)
        with pytest.raises(TaskWaitTimeoutError) as e:
            executor.wait_for_result(task.task_id, timeout=0.01)
        assert (e.value.task_id, e.value.cmd) == (task.task_id, b"blocking")
        # a TimeoutError, as in the original package: services catch it as one
        with pytest.raises(TimeoutError):
            executor.wait_for_result(task.task_id, timeout=0.01)
        task.release.set()
        assert _done(executor, task).result is not None


def test_duplicate_task_id_is_refused() -> None:
    """Submitting a second task with a live task's id is a ValueError."""
    with _executor() as executor:
        executor.submit(_table_task(task_id="same"))
        with pytest.raises(ValueError, match="same"):
            executor.submit(_table_task(task_id="same"))


def test_submitted_timestamp() -> None:
    """The submitted timestamp is a perf_counter reading taken at submit (services compare it with
    perf_counter for their call deadlines, as with the original package); None for unknown ids."""
    with _executor() as executor:
        task = _table_task()
        before = time.perf_counter()
        executor.submit(task)
        after = time.perf_counter()
        stamp = executor.get_task_submitted_timestamp(task.task_id)
        assert stamp is not None and before <= stamp <= after
        assert executor.get_task_submitted_timestamp("nope") is None


# -- expiry and closing -------------------------------------------------------------------------------


def test_result_expires_after_ttl_and_is_closed() -> None:
    """After task_result_ttl_sec the outcome is gone and its result closed."""
    closed = threading.Event()
    with _executor(task_result_ttl_sec=0.2) as executor:
        task = _table_task(on_close=closed.set)
        executor.submit(task)
        finished_at = time.monotonic()
        _done(executor, task)
        assert closed.wait(_WAIT)
        assert time.monotonic() - finished_at >= 0.2
        assert executor.wait_for_result(task.task_id) is None
        assert executor.get_task_submitted_timestamp(task.task_id) is None


def test_close_result_evicts_and_closes() -> None:
    """close_result of a finished task closes the result and forgets the task."""
    closed = threading.Event()
    with _executor() as executor:
        task = _table_task(on_close=closed.set)
        executor.submit(task)
        _done(executor, task)
        assert executor.close_result(task.task_id) is True
        assert closed.wait(_WAIT)
        assert executor.wait_for_result(task.task_id) is None
        assert executor.close_result(task.task_id) is False


def test_close_result_of_unknown_or_running_task_is_false() -> None:
    """close_result does nothing for an unknown id or a task still running."""
    with _executor() as executor:
        task = _Blocking()
        executor.submit(task)
        assert task.started.wait(_WAIT)
        assert executor.close_result("nope") is False
        assert executor.close_result(task.task_id) is False
        task.release.set()
        assert _done(executor, task).result is not None


def test_closing_waits_for_readers() -> None:
    """An evicted result is closed only once its reader released the data."""
    closed = threading.Event()
    with _executor() as executor:
        task = _table_task(on_close=closed.set)
        executor.submit(task)
        result = _done(executor, task).result
        assert isinstance(result, FlightDataTaskResult)
        lock, _ = result.acquire_data()
        executor.close_result(task.task_id)
        assert not closed.wait(0.05)
        lock.release()
        assert closed.wait(_WAIT)


# -- cancellation -------------------------------------------------------------------------------------


class _EndsWithinCancel(_Blocking):
    """Its cancel hook returns only once the worker recorded the cancelled outcome: the interleaving
    in which cancel() finds the task already finished."""

    def __init__(self) -> None:
        super().__init__()
        self.executor: ThreadTaskExecutor | None = None

    def on_task_cancel(self) -> None:
        super().on_task_cancel()
        assert self.executor is not None
        self.executor.wait_for_result(self.task_id, timeout=_WAIT)


def test_a_task_that_ends_cancelled_stays_cancelled_for_its_waiters() -> None:
    """However cancel() and the worker interleave, and however often cancel() is called, the outcome
    of a cancelled task stays until it expires: waiters and DoGet learn it was cancelled."""
    with _executor() as executor:
        task = _EndsWithinCancel()
        task.executor = executor
        executor.submit(task)
        assert task.started.wait(_WAIT)
        assert executor.cancel(task.task_id) is True
        assert executor.cancel(task.task_id) is True
        assert _done(executor, task).cancelled
        assert executor.get_task_submitted_timestamp(task.task_id) is not None


def test_cancel_of_a_finished_task_drops_its_result() -> None:
    """Cancelling a task that finished with a result closes the result (as in the original)."""
    closed = threading.Event()
    with _executor() as executor:
        task = _table_task(on_close=closed.set)
        executor.submit(task)
        assert _done(executor, task).result is not None
        assert executor.cancel(task.task_id) is True
        assert executor.wait_for_result(task.task_id) is None
        assert closed.wait(_WAIT)


def test_cancel_queued_task_never_runs() -> None:
    """A task cancelled while queued ends cancelled and its run() is never called."""
    ran: list[str] = []
    with _executor(task_threads=1) as executor:
        blocker = _Blocking()
        executor.submit(blocker)
        assert blocker.started.wait(_WAIT)
        queued = _FnTask(lambda _: ran.append("queued") or ListFlightsTaskResult([]))
        after = _table_task()
        executor.submit(queued)
        executor.submit(after)
        assert executor.cancel(queued.task_id) is True
        assert _done(executor, queued).cancelled
        blocker.release.set()
        _done(executor, after)  # the single worker got past the cancelled task
    assert ran == []


def test_cancel_running_task_is_cooperative() -> None:
    """Cancelling a running task calls on_task_cancel once and the task ends cancelled."""
    with _executor() as executor:
        task = _Blocking()
        executor.submit(task)
        assert task.started.wait(_WAIT)
        assert executor.cancel(task.task_id) is True
        assert executor.cancel(task.task_id) is True
        assert _done(executor, task).cancelled
        assert task.cancel_calls == 1


def test_cancel_non_cancellable_running_task_fails() -> None:
    """cancel() returns False for a task that switched to non-cancellable, and it completes."""

    def run(task: Task) -> TaskResult:
        task.switch_non_cancellable()
        switched.set()
        proceed.wait(_WAIT)
        return FlightDataTaskResult.for_table(_TABLE)

    switched, proceed = threading.Event(), threading.Event()
    with _executor() as executor:
        task = _FnTask(run)
        executor.submit(task)
        assert switched.wait(_WAIT)
        assert executor.cancel(task.task_id) is False
        proceed.set()
        assert _done(executor, task).result is not None


def test_cancel_finished_task_evicts_result() -> None:
    """Cancelling a finished task evicts and closes its result."""
    closed = threading.Event()
    with _executor() as executor:
        task = _table_task(on_close=closed.set)
        executor.submit(task)
        _done(executor, task)
        assert executor.cancel(task.task_id) is True
        assert closed.wait(_WAIT)
        assert executor.wait_for_result(task.task_id) is None


def test_cancel_unknown_task_is_true() -> None:
    """There is nothing to cancel for an unknown id, so cancel() succeeds."""
    with _executor() as executor:
        assert executor.cancel("nope") is True


def test_cancelled_task_that_returns_a_result_ends_cancelled() -> None:
    """A task cancelled while running ends cancelled even if run() returns data; the data is closed."""
    closed = threading.Event()
    with _executor() as executor:
        task = _Blocking(cooperative=False, on_close=closed.set)
        executor.submit(task)
        assert task.started.wait(_WAIT)
        assert executor.cancel(task.task_id) is True
        task.release.set()
        assert _done(executor, task).cancelled
        assert closed.wait(_WAIT)


# -- error mapping ------------------------------------------------------------------------------------


def _raising(e: BaseException) -> _FnTask:
    def run(_: Task) -> TaskResult:
        raise e

    return _FnTask(run)


def test_value_error_is_bad_argument_client_error() -> None:
    """A ValueError becomes BAD_ARGUMENT, marked as the client's fault, without a traceback."""
    with _executor() as executor:
        task = _raising(ValueError("unknown column 'x'"))
        executor.submit(task)
        error = _error(executor, task)
    assert error.client_error is True
    assert error.error_info.code == ErrorCode.BAD_ARGUMENT
    assert error.error_info.msg == "unknown column 'x'"  # the message as it is, as in the original
    assert error.error_info.detail is None
    assert type(error.as_flight_error()) is pyarrow.flight.FlightServerError


def test_flight_error_keeps_error_info_and_type() -> None:
    """A Flight error raised by a task keeps its ErrorInfo and its exception type."""
    info = ErrorInfo(msg="try elsewhere", detail="d", code=ErrorCode.CUSTOM_START + 5)
    with _executor() as executor:
        task = _raising(info.to_unavailable_error())
        executor.submit(task)
        error = _error(executor, task)
    assert error.error_info == info
    assert type(error.as_flight_error()) is pyarrow.flight.FlightUnavailableError


def test_flight_error_without_error_info_keeps_message_and_type() -> None:
    """A Flight error without ErrorInfo keeps its type and gets the original package's UNKNOWN
    placeholder quoting its message."""
    with _executor() as executor:
        task = _raising(pyarrow.flight.FlightTimedOutError("upstream timed out"))
        executor.submit(task)
        error = _error(executor, task)
    assert error.error_info.code == ErrorCode.UNKNOWN
    assert "upstream timed out" in error.error_info.msg
    assert isinstance(error.as_flight_error(), pyarrow.flight.FlightTimedOutError)


def test_unexpected_error_is_command_failed_with_traceback_only_in_log() -> None:
    """Any other exception is COMMAND_FAILED; the traceback is logged with the task id, not sent."""
    with structlog.testing.capture_logs() as logs, _executor() as executor:
        task = _raising(KeyError("secret_key"))
        executor.submit(task)
        error = _error(executor, task)
    assert error.error_info.code == ErrorCode.COMMAND_FAILED
    assert error.client_error is False
    assert error.error_info.msg == "There was an error while running task: 'secret_key'"
    assert error.error_info.detail is None
    failed = [e for e in logs if e["event"] == "task_failed"]
    assert len(failed) == 1
    assert failed[0]["task_id"] == task.task_id
    assert failed[0]["log_level"] == "error"
    assert isinstance(failed[0]["exc_info"], KeyError)


def test_returned_task_error_is_kept() -> None:
    """A TaskError returned by run() is the outcome as is."""
    returned = TaskError(ErrorInfo.for_reason(ErrorCode.CUSTOM_START, "nope"), client_error=True)
    with _executor() as executor:
        task = _FnTask(lambda _: returned)
        executor.submit(task)
        assert _error(executor, task) is returned


def test_on_task_error_gets_the_task_error_and_may_replace_it() -> None:
    """on_task_error receives the TaskError the executor made (the original package's signature),
    for raised errors and returned ones alike, and what it returns replaces it."""
    replacement = TaskError(ErrorInfo.for_reason(ErrorCode.CUSTOM_START + 1, "translated"))
    returned = TaskError(ErrorInfo.for_reason(ErrorCode.CUSTOM_START + 2, "returned"))
    seen: dict[str, TaskError] = {}  # by task: the two run on two workers, in either order

    class Translating(_FnTask):
        def on_task_error(self, error: TaskError) -> TaskError | None:
            seen[self.task_id] = error
            return replacement if error.error_info.code == ErrorCode.COMMAND_FAILED else None

    with _executor() as executor:
        raising = Translating(lambda _: (_ for _ in ()).throw(RuntimeError("boom")))
        returning = Translating(lambda _: returned)
        executor.submit(raising)
        executor.submit(returning)
        assert _error(executor, raising) is replacement
        assert _error(executor, returning) is returned
    assert seen[raising.task_id].error_info.msg == "There was an error while running task: boom"
    assert seen[returning.task_id] is returned


def test_on_task_error_classifies_errors_as_client_errors() -> None:
    """The original package's idiom: on_task_error returns error.to_client_error()."""

    class Classifying(_FnTask):
        def on_task_error(self, error: TaskError) -> TaskError | None:
            return error.to_client_error()

    with _executor() as executor:
        task = Classifying(lambda _: (_ for _ in ()).throw(LookupError("no such dataset")))
        executor.submit(task)
        error = _error(executor, task)
    assert error.client_error is True
    assert error.error_info.code == ErrorCode.COMMAND_FAILED


def test_failing_on_task_error_keeps_mapping() -> None:
    """If on_task_error raises, the default mapping stands."""

    class Broken(_FnTask):
        def on_task_error(self, error: TaskError) -> TaskError | None:
            raise RuntimeError("hook broke")

    with _executor() as executor:
        task = Broken(lambda _: (_ for _ in ()).throw(ValueError("bad")))
        executor.submit(task)
        assert _error(executor, task).error_info.code == ErrorCode.BAD_ARGUMENT


def test_cancelled_error_from_run_is_cancelled_outcome() -> None:
    """CancelledError raised by run() ends the task cancelled, not failed."""
    with _executor() as executor:
        task = _raising(CancelledError())
        executor.submit(task)
        assert _done(executor, task).cancelled


def test_any_other_return_value_is_the_result() -> None:
    """A run() returning an object of its own makes it the result, as in the original package (a
    service may read it in its own RPC methods); returning None fails the task."""
    with _executor() as executor:
        own, nothing = _FnTask(lambda _: _TABLE), _FnTask(lambda _: None)
        executor.submit(own)
        executor.submit(nothing)
        assert _done(executor, own).result is _TABLE
        assert _error(executor, nothing).error_info.code == ErrorCode.COMMAND_FAILED


# -- backpressure and lifecycle -----------------------------------------------------------------------


def _info(e: pyarrow.flight.FlightError) -> ErrorInfo:
    return ErrorInfo.from_pyarrow_error(e)


def test_backpressure_when_queue_is_full() -> None:
    """With task_queue_size set, a submit beyond it is a retryable UNAVAILABLE with BACKPRESSURE."""
    with _executor(task_threads=1, task_queue_size=2) as executor:
        blocker = _Blocking()
        executor.submit(blocker)
        assert blocker.started.wait(_WAIT)
        queued = [_table_task(), _table_task()]
        for task in queued:
            executor.submit(task)
        with pytest.raises(pyarrow.flight.FlightUnavailableError) as e:
            executor.submit(_table_task())
        assert _info(e.value).code == ErrorCode.BACKPRESSURE
        assert ErrorCode.is_retryable(_info(e.value).code)
        assert executor.cancel(queued[0].task_id)
        executor.submit(_table_task())  # room again
        blocker.release.set()


def test_unbounded_queue_by_default() -> None:
    """task_queue_size 0 accepts any number of queued tasks."""
    with _executor(task_threads=1) as executor:
        blocker = _Blocking()
        executor.submit(blocker)
        tasks = [_table_task() for _ in range(200)]
        for task in tasks:
            executor.submit(task)
        blocker.release.set()
        assert all(_done(executor, t).result is not None for t in tasks)


def test_submit_before_start_and_after_stop() -> None:
    """Submit before start is a RuntimeError; after stop it is UNAVAILABLE with SHUTTING_DOWN."""
    executor = ThreadTaskExecutor(config=_Config(), stop_wait=lambda: 1.0)
    with pytest.raises(RuntimeError):
        executor.submit(_table_task())
    executor.start()
    executor.stop()
    with pytest.raises(pyarrow.flight.FlightUnavailableError) as e:
        executor.submit(_table_task())
    assert _info(e.value).code == ErrorCode.SHUTTING_DOWN
    executor.stop()  # idempotent


def test_stop_cancels_queued_and_running_tasks_and_closes_results() -> None:
    """stop() cancels queued tasks (never run), cancels running ones and closes stored results."""
    ran: list[str] = []
    closed = threading.Event()
    with _executor(task_threads=1) as executor:
        finished = _table_task(on_close=closed.set)
        executor.submit(finished)
        _done(executor, finished)
        running = _Blocking()
        executor.submit(running)
        assert running.started.wait(_WAIT)
        queued = _FnTask(lambda _: ran.append("queued") or ListFlightsTaskResult([]))
        executor.submit(queued)
        executor.stop()
        assert executor.wait_for_result(running.task_id) is None  # stopped: everything is forgotten
    assert ran == []
    assert queued.cancelled
    assert running.cancel_calls == 1
    assert closed.is_set()


def test_stop_wakes_waiters_with_cancelled_outcome() -> None:
    """Threads waiting for queued or running tasks get a cancelled outcome when the executor stops."""
    executor = ThreadTaskExecutor(config=_Config(task_threads=1), stop_wait=lambda: 5.0)
    executor.start()
    running, queued = _Blocking(), _table_task()
    executor.submit(running)
    executor.submit(queued)
    assert running.started.wait(_WAIT)
    outcomes: dict[str, TaskExecutionResult | None] = {}
    waiting = [threading.Event(), threading.Event()]

    def wait(task: Task, about_to_wait: threading.Event) -> None:
        # from here into the executor's wait is a few bytecodes, while stop() must first cancel and
        # join the blocking worker: the window is tiny (a waiter that came after stop() would
        # rightly find no task at all)
        about_to_wait.set()
        outcomes[task.task_id] = executor.wait_for_result(task.task_id)

    waiters = [
        threading.Thread(target=wait, args=args) for args in zip((running, queued), waiting, strict=True)
    ]
    for w in waiters:
        w.start()
    assert all(event.wait(_WAIT) for event in waiting)
    executor.stop()
    for w in waiters:
        w.join(_WAIT)
    assert [o is not None and o.cancelled for o in outcomes.values()] == [True, True]


def test_stop_gives_up_on_uncooperative_task_at_deadline() -> None:
    """A running task ignoring cancellation is reported cancelled at the stop deadline; its result is
    closed when it finally ends."""
    closed = threading.Event()
    executor = ThreadTaskExecutor(config=_Config(), stop_wait=lambda: 0.1)
    executor.start()
    task = _Blocking(cooperative=False, on_close=closed.set)
    executor.submit(task)
    assert task.started.wait(_WAIT)
    outcome: list[TaskExecutionResult | None] = []
    waiter = threading.Thread(target=lambda: outcome.append(executor.wait_for_result(task.task_id)))
    waiter.start()
    started = time.monotonic()
    executor.stop()
    assert time.monotonic() - started < 2.0
    waiter.join(_WAIT)
    assert outcome[0] is not None and outcome[0].cancelled
    task.release.set()
    assert closed.wait(_WAIT)


# -- context propagation ------------------------------------------------------------------------------

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def test_context_vars_of_submitter_carry_into_task() -> None:
    """Context variables and structlog contextvars set by the submitter are visible in the task,
    and what the task binds does not leak back."""
    seen: dict[str, object] = {}

    def run(task: Task) -> TaskResult:
        seen["request_id"] = _request_id.get()
        seen["structlog"] = dict(structlog.contextvars.get_contextvars())
        structlog.contextvars.bind_contextvars(inside="task")
        return ListFlightsTaskResult([])

    token = _request_id.set("req-42")
    structlog.contextvars.bind_contextvars(peer="10.0.0.1")
    try:
        with _executor() as executor:
            task = _FnTask(run)
            executor.submit(task)
            _done(executor, task)
        assert "inside" not in structlog.contextvars.get_contextvars()
    finally:
        _request_id.reset(token)
        structlog.contextvars.unbind_contextvars("peer")
    assert seen["request_id"] == "req-42"
    assert seen["structlog"] == {"peer": "10.0.0.1", "task_id": task.task_id}


def test_task_runs_in_task_execution_span_under_submitter_span(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each task runs in a 'task_execution' span with its task_id, child of the submitter's span."""
    from gooddata_flight_server.tasks import _outcome

    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    monkeypatch.setattr(_outcome, "_tracer", tracer)
    monkeypatch.setattr(_outcome, "tracing_active", lambda: True)  # as when a server traces
    inner: list[trace.SpanContext] = []

    def run(_: Task) -> TaskResult:
        inner.append(trace.get_current_span().get_span_context())
        return ListFlightsTaskResult([])

    with _executor() as executor, tracer.start_as_current_span("rpc") as parent:
        task = _FnTask(run)
        executor.submit(task)
        _done(executor, task)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    span = spans["task_execution"]
    assert span.attributes is not None and span.attributes["task_id"] == task.task_id
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert inner[0].span_id == span.context.span_id


# -- metrics ------------------------------------------------------------------------------------------


def test_outcome_counters_and_summaries_change() -> None:
    """The original package's counters: completed counts every finished task (with a result, an
    error or cancelled while running), error the server's failures, cancelled every cancellation;
    the duration summaries count tasks that ran."""
    names = [
        "gdfs_task_completed_total",
        "gdfs_task_error_total",
        "gdfs_task_cancelled_total",
        "gdfs_task_wait_count",
        "gdfs_task_duration_count",
        "gdfs_task_e2e_duration_count",
    ]
    with _executor(task_threads=1) as executor:
        before = {n: _sample(n) for n in names}
        ok, failing = _table_task(), _raising(RuntimeError("x"))
        executor.submit(ok)
        executor.submit(failing)
        _done(executor, ok)
        _done(executor, failing)
        blocker = _Blocking()
        executor.submit(blocker)
        assert blocker.started.wait(_WAIT)
        queued = _table_task()
        executor.submit(queued)
        executor.cancel(queued.task_id)
        executor.cancel(blocker.task_id)
        _done(executor, blocker)
    # read after stop() joined the workers: a worker counts a task just after its waiters woke
    delta = {n: _sample(n) - before[n] for n in names}
    assert delta == {
        "gdfs_task_completed_total": 3,
        "gdfs_task_error_total": 1,
        "gdfs_task_cancelled_total": 2,
        "gdfs_task_wait_count": 3,
        "gdfs_task_duration_count": 3,
        "gdfs_task_e2e_duration_count": 3,
    }


def test_queue_gauge_counts_waiting_tasks_of_all_executors() -> None:
    """gdfs_task_queue reports the queued tasks of every live executor at scrape time."""
    with _executor(task_threads=1) as first, _executor(task_threads=1) as second:
        baseline = _sample("gdfs_task_queue")
        blockers = [_Blocking(), _Blocking()]
        first.submit(blockers[0])
        second.submit(blockers[1])
        assert all(b.started.wait(_WAIT) for b in blockers)
        first.submit(_table_task())
        first.submit(_table_task())
        second.submit(_table_task())
        assert _sample("gdfs_task_queue") - baseline == 3
        assert _sample("gdfs_close_queue") >= 0
        for b in blockers:
            b.release.set()
        wait_until(lambda: _sample("gdfs_task_queue") == baseline)


def test_stopped_executor_leaves_queue_gauge() -> None:
    """A stopped executor no longer contributes to gdfs_task_queue."""
    baseline = _sample("gdfs_task_queue")
    executor = ThreadTaskExecutor(config=_Config(task_threads=1), stop_wait=lambda: 0.1)
    executor.start()
    blocker = _Blocking()
    executor.submit(blocker)
    assert blocker.started.wait(_WAIT)
    executor.submit(_table_task())
    assert _sample("gdfs_task_queue") == baseline + 1
    executor.stop()
    assert _sample("gdfs_task_queue") == baseline


def test_many_executors_register_metrics_once() -> None:
    """Starting many executors in one process never fails on double registration."""
    executors = [ThreadTaskExecutor(config=_Config(), stop_wait=lambda: 1.0) for _ in range(3)]  # type: ignore[arg-type]
    for executor in executors:
        executor.start()
    for executor in executors:
        executor.stop()
    assert prometheus_client.REGISTRY.get_sample_value("gdfs_task_queue") is not None


def test_importing_does_not_start_threads_or_register_metrics() -> None:
    """Importing the tasks package starts no thread and registers no metric."""
    code = (
        "import threading, prometheus_client\n"
        "import gooddata_flight_server.tasks\n"
        "import gooddata_flight_server.observability.metrics\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "names = [m.name for m in prometheus_client.REGISTRY.collect()]\n"
        "assert not [n for n in names if n.startswith('gdfs_')], names\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
