"""The directory read model: last value per entity, tombstones delete, revocations refused."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from shared import topics
from shared.apikeys import issue_key
from shared.clock import SHANGHAI
from shared.directory import Directory, InvalidKey, key_entity, task_entity
from shared.events import ApiKeyPublished, TaskAssignmentPublished
from shared.kafka import topic_specs
from shared.settings import CommonSettings

NOW = dt.datetime(2022, 7, 1, 9, 0, tzinfo=SHANGHAI)


def key_event(key_id: str, key_hash: str, *, revoked: bool = False) -> ApiKeyPublished:
    return ApiKeyPublished(
        event_id=uuid.uuid4(),
        occurred_at=NOW,
        key_id=key_id,
        key_hash=key_hash,
        role="unit",
        unit="市统计局",
        expires_at=None,
        revoked=revoked,
    )


def assignment(code: str, *, accepting: bool = True) -> TaskAssignmentPublished:
    return TaskAssignmentPublished(
        event_id=uuid.uuid4(),
        occurred_at=NOW,
        task_code=code,
        lead_units=["市统计局"],
        co_units=[],
        accepting_reports=accepting,
    )


def test_a_tombstone_deletes_the_key_and_its_token_is_refused() -> None:
    directory = Directory()
    issued = issue_key("unit")
    directory.apply(key_event(issued.key_id, issued.key_hash))
    assert directory.authenticate(issued.plaintext, now=NOW).key_id == issued.key_id
    directory.delete(key_entity(issued.key_id))
    assert directory.keys == {}
    with pytest.raises(InvalidKey, match="吊销"):
        directory.authenticate(issued.plaintext, now=NOW)


def test_a_revocation_published_as_a_value_also_deletes_the_key() -> None:
    directory = Directory()
    issued = issue_key("unit")
    directory.apply(key_event(issued.key_id, issued.key_hash))
    directory.apply(key_event(issued.key_id, issued.key_hash, revoked=True))
    assert directory.entries() == {}
    with pytest.raises(InvalidKey):
        directory.authenticate(issued.plaintext, now=NOW)


def test_a_new_hash_for_the_same_key_id_replaces_the_old_one() -> None:
    directory = Directory()
    old, new = issue_key("unit"), issue_key("unit")
    directory.apply(key_event("k1", old.key_hash))
    directory.apply(key_event("k1", new.key_hash))
    assert set(directory.keys) == {new.key_hash}
    assert set(directory.entries()) == {key_entity("k1")}


def test_a_task_tombstone_removes_the_assignment_and_other_entities_stay() -> None:
    directory = Directory()
    issued = issue_key("unit")
    directory.apply(key_event(issued.key_id, issued.key_hash))
    directory.apply(assignment("T-1"))
    directory.apply(assignment("T-2", accepting=False))
    directory.delete(task_entity("T-1"))
    assert directory.task("T-1") is None
    closed = directory.task("T-2")
    assert closed is not None and not closed.accepting_reports
    assert set(directory.entries()) == {key_entity(issued.key_id), task_entity("T-2")}
    directory.delete("unknown:entity")  # not ours: ignored
    assert len(directory.entries()) == 2


def test_replace_swaps_in_a_fresh_state_without_what_was_deleted_meanwhile() -> None:
    directory = Directory()
    gone, kept = issue_key("unit"), issue_key("unit")
    directory.apply(key_event(gone.key_id, gone.key_hash))
    directory.apply(assignment("T-1"))
    directory.replace([key_event(kept.key_id, kept.key_hash), assignment("T-2")])
    assert set(directory.entries()) == {key_entity(kept.key_id), task_entity("T-2")}
    with pytest.raises(InvalidKey):
        directory.authenticate(gone.plaintext, now=NOW)


def test_only_the_directory_topic_is_created_compacted() -> None:
    settings = CommonSettings(topic_partitions=4, topic_replication_factor=1)
    names = [topics.DIRECTORY, topics.dlq(topics.DIRECTORY), topics.PROGRESS_REPORTS]
    specs = {spec.name: spec for spec in topic_specs(settings, names)}
    directory = specs[topics.DIRECTORY]
    assert directory.topic_configs["cleanup.policy"] == "compact"
    assert float(directory.topic_configs["min.cleanable.dirty.ratio"]) <= 0.5
    assert int(directory.topic_configs["segment.ms"]) <= 24 * 3600 * 1000
    assert directory.num_partitions == 4 and directory.replication_factor == 1
    # Reports and dead letters are a history, not a state: never compacted.
    for name in names[1:]:
        assert "cleanup.policy" not in specs[name].topic_configs
