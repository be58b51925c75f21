"""Compatibility: the original package's module path; see ``gooddata_flight_server.tasks``."""

from gooddata_flight_server.tasks.task_executor import TaskWaitTimeoutError
from gooddata_flight_server.tasks.task_result import ArrowData

__all__ = ["ArrowData", "TaskWaitTimeoutError"]
