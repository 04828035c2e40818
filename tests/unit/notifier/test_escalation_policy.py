"""Loading the escalation policy: the shipped defaults and errors that name the line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.notifier.escalation.policy import (
    DEFAULT_POLICY_PATH,
    ChannelKind,
    PolicyError,
    PolicyReloader,
    RecipientRole,
    default_policy,
    load_policy,
    parse_policy,
)

VALID = """\
version: 1
supervising_office: 市政府办公厅督查室
levels:
  - level: 1
    name: 催办
    action: 请按时报送进展
    when:
      - light: yellow
    recipients:
      - role: responsible_units
        channels: [email]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_policy_matches_design() -> None:
    policy = default_policy()
    assert policy.timezone == "Asia/Shanghai"
    assert [(level.level, level.name) for level in policy.levels] == [
        (1, "催办"),
        (2, "督办"),
        (3, "通报"),
    ]
    reminder, notice, bulletin = policy.levels
    assert {(t.light, t.report_due_within_days) for t in reminder.when} == {
        ("yellow", None),
        (None, 3),
    }
    assert [(t.light, t.for_days) for t in notice.when] == [("red", 0)]
    assert [(t.light, t.for_days) for t in bulletin.when] == [("red", 7)]
    assert [r.role for r in reminder.recipients] == [
        RecipientRole.RESPONSIBLE_UNITS,
        RecipientRole.CO_UNIT_MISSING,
    ]
    assert [r.role for r in notice.recipients] == [
        RecipientRole.LEAD_UNIT_LEADERSHIP,
        RecipientRole.SUPERVISING_OFFICE,
    ]
    assert [r.role for r in bulletin.recipients] == [
        RecipientRole.SUPERVISING_OFFICE,
        RecipientRole.SUPERVISING_LEADER,
    ]
    assert all(level.repeat_every_days == 3 for level in policy.levels)
    assert [(rule.if_light, rule.suppress_levels) for rule in policy.inhibit] == [("red", (1,))]
    assert ChannelKind.EMAIL in notice.recipients[0].channels


def test_fingerprint_ignores_layout_and_follows_meaning(tmp_path: Path) -> None:
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    reformatted = "# another comment\n" + text.replace("window_hours: 24", "window_hours:   24")
    changed = text.replace("rearm_after_hours: 72", "rearm_after_hours: 48")
    base = parse_policy(text).fingerprint
    assert parse_policy(reformatted).fingerprint == base
    assert parse_policy(changed).fingerprint != base
    assert len(base) == 64


def test_load_policy_reads_a_file(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, VALID))
    assert policy.levels[0].recipients[0].channels == (ChannelKind.EMAIL,)


def expect_error(tmp_path: Path, text: str) -> PolicyError:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(path) in str(caught.value)
    return caught.value


def test_unknown_key_names_its_line(tmp_path: Path) -> None:
    error = expect_error(tmp_path, VALID.replace("    action:", "    colour: red\n    action:"))
    assert (error.line, error.column) == (6, 5)
    assert "levels[0].colour" in str(error)
    assert f"{tmp_path / 'policy.yaml'}:6:5" in str(error)


def test_bad_channel_names_line_and_column(tmp_path: Path) -> None:
    error = expect_error(tmp_path, VALID.replace("channels: [email]", "channels: [email, sms]"))
    assert (error.line, error.column) == (11, 27)
    assert "levels[0].recipients[0].channels[1]" in str(error)
    # The item's error, not a cascade of "too short" complaints about its parents.
    assert len(error.problems) == 1


def test_bad_role_names_its_line(tmp_path: Path) -> None:
    error = expect_error(tmp_path, VALID.replace("role: responsible_units", "role: mayor"))
    assert error.line == 10
    assert "responsible_units" in str(error)  # says what is allowed


def test_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    error = expect_error(tmp_path, VALID.replace("channels: [email]", "channels: [email"))
    assert error.line in (11, 12)  # where the parser noticed


def test_duplicate_key_names_its_line(tmp_path: Path) -> None:
    error = expect_error(tmp_path, VALID.replace("    action:", "    name: 再次\n    action:"))
    assert error.line == 6
    assert "duplicate" in str(error)


def test_levels_out_of_order_name_the_level(tmp_path: Path) -> None:
    error = expect_error(tmp_path, VALID.replace("  - level: 1", "  - level: 2"))
    assert (error.line, error.column) == (4, 5)
    assert "levels[0].level" in str(error)


def test_missing_field_points_at_its_parent(tmp_path: Path) -> None:
    error = expect_error(tmp_path, VALID.replace("    action: 请按时报送进展\n", ""))
    assert error.line == 4
    assert "levels[0].action" in str(error)
    assert "Field required" in str(error)


def test_trigger_must_say_something(tmp_path: Path) -> None:
    error = expect_error(tmp_path, VALID.replace("      - light: yellow", "      - for_days: 3"))
    assert error.line == 8
    assert "for_days needs a light" in str(error)


def test_inhibit_of_an_unknown_level(tmp_path: Path) -> None:
    text = VALID + "inhibit:\n  - if_light: red\n    suppress_levels: [1, 4]\n"
    error = expect_error(tmp_path, text)
    assert error.line == 14
    assert "no level 4" in str(error)


def test_unknown_time_zone(tmp_path: Path) -> None:
    error = expect_error(tmp_path, "timezone: Mars/Olympus\n" + VALID)
    assert error.line == 1
    assert "Mars/Olympus" in str(error)


def test_window_must_divide_the_day(tmp_path: Path) -> None:
    error = expect_error(tmp_path, VALID + "window_hours: 5\n")
    assert error.line == 12


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    text = VALID.replace("role: responsible_units", "role: mayor")
    text = text.replace("version: 1", "version: 2")
    error = expect_error(tmp_path, text)
    assert sorted(p.line for p in error.problems) == [1, 10]


def test_empty_and_non_mapping_files(tmp_path: Path) -> None:
    assert expect_error(tmp_path, "").line == 1
    assert expect_error(tmp_path, "- a\n- b\n").line == 1


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.yaml")


def test_reloader_picks_up_changes_and_keeps_the_old_policy_on_a_bad_edit(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, VALID)
    reloader = PolicyReloader(path)
    first = reloader.policy.fingerprint
    assert reloader.refresh() is False  # untouched

    def rewrite(text: str, bump: int) -> None:
        path.write_text(text, encoding="utf-8")
        stat = path.stat()
        # Some file systems have coarse timestamps; make the change visible regardless.
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump * 1_000_000_000))

    rewrite("# only a comment\n" + VALID, 1)
    assert reloader.refresh() is False  # same meaning
    rewrite(VALID.replace("    when:", "    repeat_every_days: 1\n    when:"), 2)
    assert reloader.refresh() is True
    assert reloader.policy.fingerprint != first
    changed = reloader.policy
    rewrite(VALID.replace("channels: [email]", "channels: [fax]"), 3)
    with pytest.raises(PolicyError, match="channels"):
        reloader.refresh()
    assert reloader.policy is changed


def test_reloader_refuses_to_start_on_a_bad_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError):
        PolicyReloader(write(tmp_path, VALID.replace("version: 1", "version: one")))
