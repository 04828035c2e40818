"""A directory follower's checkpoint: the state it read and how far, on local disk.

A follower that restarts with a usable checkpoint starts from its entries and reads the
directory topic only from the checkpoint's offsets on, instead of the whole history (a
broker that does not compact, or tombstones not yet expired). Whether a checkpoint is
usable is decided by `Checkpoint.unusable`; the reasoning is in docs/guarantees.md
("The directory: last value per key"). The file is JSON, written atomically (a temporary
file, fsync, rename), readable only by the service's user.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared import topics

FORMAT: Final = 1

# The part of the tombstone retention a checkpoint may use: the rest absorbs a wall clock
# stepped forward or back, on this host or the broker's, while the service was down.
USABLE_SHARE: Final = 0.9


class CheckpointUnreadable(Exception):
    """The checkpoint file exists but cannot be read or is not a valid checkpoint."""


class PartitionMark(BaseModel):
    """How far one partition was read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The next offset to read: everything before it is in `entries`.
    offset: int = Field(ge=0)
    # The end offset the broker reported when the follower was last confirmed at the end
    # (at `confirmed_at`); at most `offset`. On Kafka the two are equal when caught up.
    end: int = Field(ge=0)


class Checkpoint(BaseModel):
    """The live entries (raw values as read, by message key) and the offsets they cover."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = FORMAT
    topic: str
    # The broker's id of the topic (KIP-516); a recreated topic has a new one.
    topic_id: str | None
    partition_count: int = Field(ge=1)
    # When the file was written (wall clock).
    written_at: AwareDatetime
    # When, before asking the broker, the follower was last found at the end of every
    # partition: whatever lies at or after `offset` was appended after this moment. A
    # checkpoint's age is counted from here.
    confirmed_at: AwareDatetime
    partitions: dict[int, PartitionMark]
    entries: dict[str, str]

    @model_validator(mode="after")
    def _consistent(self) -> Checkpoint:
        if set(self.partitions) != set(range(self.partition_count)):
            raise ValueError("partitions do not match partition_count")
        if any(mark.end > mark.offset for mark in self.partitions.values()):
            raise ValueError("a partition's confirmed end lies beyond its offset")
        if self.confirmed_at > self.written_at:
            raise ValueError("confirmed_at is later than written_at")
        return self

    def unusable(
        self,
        *,
        topic_id: str | None,
        beginnings: dict[int, int],
        ends: dict[int, int],
        now: dt.datetime,
        retention: dt.timedelta,
    ) -> str | None:
        """Why this checkpoint must not be used on the topic as it is now; None if usable.

        `beginnings` and `ends` are the topic's current offsets by partition, `retention`
        the least time the broker keeps a tombstone (`delete.retention.ms`).
        """
        if self.topic != topics.DIRECTORY:
            return f"checkpoint of topic {self.topic!r}, not {topics.DIRECTORY!r}"
        if self.partition_count != len(ends):
            return f"checkpoint of {self.partition_count} partitions, the topic has {len(ends)}"
        if self.topic_id != topic_id:
            return f"checkpoint of topic id {self.topic_id}, the topic's is {topic_id}"
        age = now - self.confirmed_at
        if age < dt.timedelta(0):
            return f"checkpoint confirmed {-age} in the future (the clock went back)"
        if age >= retention * USABLE_SHARE:
            return f"checkpoint {age} old, tombstones are only kept {retention}"
        for partition, mark in sorted(self.partitions.items()):
            if partition not in ends or partition not in beginnings:
                return f"partition {partition} is not on the topic"
            if mark.offset < beginnings[partition]:
                return (
                    f"partition {partition}: checkpoint offset {mark.offset} lies before "
                    f"the beginning {beginnings[partition]} (the topic was truncated)"
                )
            if mark.end > ends[partition]:
                return (
                    f"partition {partition}: checkpoint offset {mark.end} lies beyond the "
                    f"end {ends[partition]} (the topic was recreated or truncated)"
                )
        return None


def path_in(directory: Path) -> Path:
    """The checkpoint file of the directory topic in `directory`."""
    return directory / f"{topics.DIRECTORY}.json"


def save(directory: Path, checkpoint: Checkpoint) -> Path:
    """Write the checkpoint atomically: a reader finds the old file or the new one, whole.

    Raises OSError if the directory cannot be written.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = path_in(directory)
    # mkstemp creates the file 0600 with a unique name, so replicas sharing the
    # directory never write into each other's temporary file.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(checkpoint.model_dump_json().encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # The rename itself is durable once the directory is synced.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def load(directory: Path) -> Checkpoint | None:
    """The checkpoint in `directory`; None if there is none.

    Raises `CheckpointUnreadable` if the file cannot be read or is not a valid checkpoint.
    """
    path = path_in(directory)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointUnreadable(f"{path}: {exc}") from exc
    try:
        return Checkpoint.model_validate_json(raw)
    except ValidationError as exc:
        raise CheckpointUnreadable(f"{path}: {exc}") from exc
