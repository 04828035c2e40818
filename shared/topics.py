"""Topic names: the contracts between services."""

import datetime as dt
from types import MappingProxyType
from typing import Final

PROGRESS_REPORTS: Final = "intake.progress-reports"
TASK_EVENTS: Final = "tracker.task-events"
DIRECTORY: Final = "tracker.directory"

ALL: Final = (PROGRESS_REPORTS, TASK_EVENTS, DIRECTORY)

# The directory is a changelog keyed by entity (`key:<key_id>`, `task:<code>`): only the
# latest value of each key matters and a null value (tombstone) deletes it, so the broker
# may compact it. Compaction only touches closed segments: roll one every hour and clean
# once a tenth of the log is superseded. Tombstones stay an hour: a follower either reads
# from the start and swaps in a fresh state, or resumes from a checkpoint younger than that
# (shared/directory_checkpoint.py), so none relies on a tombstone older than an hour.
DIRECTORY_CONFIG: Final = MappingProxyType(
    {
        "cleanup.policy": "compact",
        "min.cleanable.dirty.ratio": "0.1",
        "segment.ms": "3600000",
        "delete.retention.ms": "3600000",
    }
)

# How long the broker keeps a directory tombstone at least, once written.
DIRECTORY_TOMBSTONE_RETENTION: Final = dt.timedelta(
    milliseconds=int(DIRECTORY_CONFIG["delete.retention.ms"])
)

# Topic-level settings each topic is created (and kept) with; the rest use broker defaults.
CONFIGS: Final = MappingProxyType({DIRECTORY: DIRECTORY_CONFIG})


def dlq(topic: str) -> str:
    """Name of the dead-letter topic for `topic`."""
    return f"{topic}-dlq"
