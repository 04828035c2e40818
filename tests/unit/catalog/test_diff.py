"""Re-importing: the same document changes nothing; an edited one says what changed."""

from __future__ import annotations

from typing import Any

from services.tracker.catalog import diff_catalog, parse_document

from .seeds import parsed_seed, seed_text


def _stored(prefix: str) -> dict[str, dict[str, Any]]:
    return {task["code"]: task for task in parsed_seed(prefix).to_json_dict()["tasks"]}


def test_reimporting_the_same_document_changes_nothing() -> None:
    diff = diff_catalog(_stored("002"), parse_document(seed_text("002")))
    assert diff.is_noop
    assert len(diff.unchanged) == 138


def test_stored_parsed_tasks_compare_too() -> None:
    stored = {task.code: task for task in parsed_seed("000").tasks}
    assert diff_catalog(stored, parsed_seed("000")).is_noop


def test_edited_document_reports_changed_fields_added_and_removed() -> None:
    text = seed_text("002")
    edited = text.replace(
        "\t年底前完成\n\t王卫东\n\t市发展改革委\n\n\t2\n",
        "\t6月底前完成\n\t王卫东\n\t市发展改革委\n\n\t2\n",
        1,
    ).replace("\t孙文魁\n\t市财政局\n市税务局\n", "\t孙文魁\n\t市财政局\n", 1)
    edited = edited.replace("\t138\n", "\t139\n")
    document = parse_document(edited)
    code = document.code
    diff = diff_catalog(_stored("002"), document)
    assert diff.changed == [(f"{code}-001-1", ("deadline",)), (f"{code}-002-1", ("co_units",))]
    assert diff.added == [f"{code}-139-1"]
    assert diff.removed == [f"{code}-138-1"]
    assert len(diff.unchanged) == 135
    assert diff.to_json_dict()["changed"][0] == {"code": f"{code}-001-1", "fields": ["deadline"]}


def test_fields_the_store_does_not_keep_are_not_compared() -> None:
    stored = {
        code: {key: value for key, value in task.items() if key != "targets"}
        for code, task in _stored("003").items()
    }
    assert diff_catalog(stored, parsed_seed("003")).is_noop


def test_plan_goals_are_diffed_as_well() -> None:
    document = parsed_seed("004")
    stored = {goal["code"]: goal for goal in document.to_json_dict()["goals"]}
    first = next(iter(stored))
    stored[first] = {**stored[first], "text": "旧文本"}
    diff = diff_catalog(stored, document)
    assert diff.changed == [(first, ("text",))]
