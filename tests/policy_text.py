"""Editing the shipped escalation policies' text for tests (shared by the test suites)."""

from __future__ import annotations


def without_quiet_hours(text: str) -> str:
    """A shipped policy's text with its `quiet_hours` block removed: every level at any
    hour. For tests that walk the ladder day by day across weekends and holidays, or run on
    a clock that falls outside working hours; quiet hours have tests of their own."""
    start = text.index("quiet_hours:")
    end = text.index("levels: [1, 2]\n", start) + len("levels: [1, 2]\n")
    return text[:start] + text[end:]
