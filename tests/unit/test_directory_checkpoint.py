"""When a directory checkpoint may be used, and how it is written and read."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest

from shared import directory_checkpoint, topics
from shared.directory_checkpoint import Checkpoint, CheckpointUnreadable, PartitionMark

NOW = dt.datetime(2022, 7, 1, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
TOPIC_ID = "01a23777-55a5-7083-b74e-1842d692e0a7"


def checkpoint(*, age: dt.timedelta = dt.timedelta(minutes=5), **changes: object) -> Checkpoint:
    fields: dict[str, object] = {
        "topic": topics.DIRECTORY,
        "topic_id": TOPIC_ID,
        "partition_count": 2,
        "written_at": NOW - age,
        "confirmed_at": NOW - age,
        "partitions": {0: PartitionMark(offset=10, end=8), 1: PartitionMark(offset=4, end=4)},
        "entries": {"task:T1": '{"x": "市统计局"}'},
    }
    fields.update(changes)
    return Checkpoint.model_validate(fields)


def why(saved: Checkpoint, **changes: object) -> str | None:
    now: dict[str, object] = {
        "topic_id": TOPIC_ID,
        "beginnings": {0: 0, 1: 0},
        "ends": {0: 12, 1: 4},
        "now": NOW,
        "retention": HOUR,
    }
    now.update(changes)
    return saved.unusable(**now)  # type: ignore[arg-type]


def test_a_recent_checkpoint_of_the_same_topic_is_usable() -> None:
    assert why(checkpoint()) is None
    # Tansu reports an end below the true one: the confirmed end counts, not the offset.
    assert why(checkpoint(), ends={0: 8, 1: 4}) is None


@pytest.mark.parametrize(
    ("saved", "changes", "reason"),
    [
        (checkpoint(topic="tracker.other"), {}, "checkpoint of topic 'tracker.other'"),
        (checkpoint(), {"ends": {0: 12, 1: 4, 2: 0}}, "of 2 partitions, the topic has 3"),
        (checkpoint(), {"topic_id": "01a23777-57b5-7dd1"}, "checkpoint of topic id"),
        (checkpoint(topic_id=None), {}, "checkpoint of topic id None"),
        (checkpoint(age=HOUR * 0.9), {}, "tombstones are only kept 1:00:00"),
        (checkpoint(age=-dt.timedelta(seconds=1)), {}, "in the future"),
        (checkpoint(), {"beginnings": {0: 11, 1: 0}}, "lies before the beginning 11"),
        (checkpoint(), {"ends": {0: 7, 1: 4}}, "offset 8 lies beyond the end 7"),
        (checkpoint(), {"ends": {0: 12, 1: 0}}, "partition 1: checkpoint offset 4 lies beyond"),
    ],
    ids=[
        "other-topic",
        "partition-count",
        "recreated-topic",
        "no-topic-id",
        "too-old",
        "future",
        "truncated",
        "beyond-end",
        "emptied-partition",
    ],
)
def test_an_unsafe_checkpoint_is_refused_with_its_reason(
    saved: Checkpoint, changes: dict[str, object], reason: str
) -> None:
    found = why(saved, **changes)
    assert found is not None and reason in found


def test_just_under_the_usable_age_is_still_usable() -> None:
    assert why(checkpoint(age=HOUR * 0.9 - dt.timedelta(seconds=1))) is None


def test_an_inconsistent_checkpoint_does_not_validate() -> None:
    with pytest.raises(ValueError, match="partition_count"):
        checkpoint(partition_count=3)
    with pytest.raises(ValueError, match="confirmed end lies beyond"):
        checkpoint(
            partitions={0: PartitionMark(offset=1, end=2), 1: PartitionMark(offset=0, end=0)}
        )


def test_save_and_load_round_trip_through_a_private_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert directory_checkpoint.load(cache) is None
    saved = checkpoint()
    path = directory_checkpoint.save(cache, saved)
    assert directory_checkpoint.load(cache) == saved
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    # No temporary file left behind.
    assert [p.name for p in cache.iterdir()] == [path.name]


def test_an_unreadable_checkpoint_says_which_file(tmp_path: Path) -> None:
    directory_checkpoint.save(tmp_path, checkpoint())
    directory_checkpoint.path_in(tmp_path).write_text('{"format": 1}', "utf-8")
    with pytest.raises(CheckpointUnreadable, match=r"tracker\.directory\.json"):
        directory_checkpoint.load(tmp_path)
