"""The documented text pattern and the validator agree, so the OpenAPI schema tells the truth."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.textguard import check_text, documented_pattern, find_forbidden

# Every code point but surrogates (JSON text cannot carry them; RequestGuard refuses escapes).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
INTERESTING = st.sampled_from(
    ["", " ", "\t", "\n", "\x00", "\x1f", "\x85", "\u202e", "\ufffe", "a"]
)


def accepted(value: str, *, multiline: bool, required: bool) -> bool:
    try:
        check_text(value, multiline=multiline, required=required)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("multiline", [False, True])
@pytest.mark.parametrize("required", [False, True])
@settings(max_examples=400, derandomize=True, database=None)
@given(value=st.lists(st.one_of(TEXT, INTERESTING), max_size=4).map("".join))
def test_pattern_and_validator_agree(value: str, multiline: bool, required: bool) -> None:
    pattern = re.compile(documented_pattern(multiline=multiline, required=required))
    # JSON-schema `$` is the end of the string: Python's fullmatch, not search.
    assert (pattern.fullmatch(value) is not None) == accepted(
        value, multiline=multiline, required=required
    )


def test_messages_name_the_character_and_its_position() -> None:
    with pytest.raises(ValueError, match="第 3 个字符是NUL"):
        check_text("ab\x00", multiline=True, required=True)
    with pytest.raises(ValueError, match="U\\+202E"):
        check_text("a\u202eb", multiline=True, required=True)
    with pytest.raises(ValueError, match="lone surrogate"):
        check_text("a\ud800", multiline=True, required=True)
    with pytest.raises(ValueError, match="'%'"):
        check_text("50%", multiline=False, required=True, also="%")
    assert check_text("  <b>{{x}}</b>  ", multiline=False, required=True) == "<b>{{x}}</b>"
    assert find_forbidden("第一行\n第二行\x0c") == (8, "控制字符 U+000C (control character)")
