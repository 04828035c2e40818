"""Topic names: the contracts between services."""

from typing import Final

PROGRESS_REPORTS: Final = "intake.progress-reports"
TASK_EVENTS: Final = "tracker.task-events"
DIRECTORY: Final = "tracker.directory"

ALL: Final = (PROGRESS_REPORTS, TASK_EVENTS, DIRECTORY)


def dlq(topic: str) -> str:
    """Name of the dead-letter topic for `topic`."""
    return f"{topic}-dlq"
