"""Long-running tasks: work that produces Flight data off the RPC threads (SPEC §6).

A service submits a :class:`Task` to the server's :class:`TaskExecutor` (``ctx.task_executor``),
waits for its :class:`TaskExecutionResult`, hands the client a ticket holding the task id, and
streams the result on DoGet (``FlightServerMethods.do_get_task_result``).
"""

from gooddata_flight_server.tasks.task import Task
from gooddata_flight_server.tasks.task_error import TaskError
from gooddata_flight_server.tasks.task_executor import (
    TaskExecutor,
    TaskExecutorConfig,
    TaskExecutorSettings,
    TaskWaitTimeoutError,
)
from gooddata_flight_server.tasks.task_result import (
    ArrowData,
    DataLock,
    FlightDataTaskResult,
    ListFlightsTaskResult,
    TaskExecutionResult,
    TaskResult,
)
from gooddata_flight_server.tasks.thread_task_executor import ThreadTaskExecutor

__all__ = [
    "ArrowData",
    "DataLock",
    "FlightDataTaskResult",
    "ListFlightsTaskResult",
    "Task",
    "TaskError",
    "TaskExecutionResult",
    "TaskExecutor",
    "TaskExecutorConfig",
    "TaskExecutorSettings",
    "TaskResult",
    "TaskWaitTimeoutError",
    "ThreadTaskExecutor",
]
