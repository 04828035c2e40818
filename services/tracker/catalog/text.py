"""Character-level normalisation shared by the parsers: simplified script, width, mojibake."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Protocol


class _Converter(Protocol):
    def convert(self, text: str) -> str: ...


@lru_cache(maxsize=1)
def _t2s() -> _Converter:
    # Imported lazily: building the converter loads dictionaries, which only importing
    # code paths should pay for.
    import opencc

    converter: _Converter = opencc.OpenCC("t2s")
    return converter


def to_simplified(text: str) -> str:
    """Convert traditional characters to simplified ones, keeping string length when possible."""
    if not text:
        return text
    converted = _t2s().convert(text)
    if len(converted) == len(text):
        return converted
    # Phrase-level conversion changed the length; fall back to character by character so
    # offsets into the simplified text still point at the same place in the original.
    return "".join(_t2s().convert(char) or char for char in text)


def fold_width(text: str) -> str:
    """Fold full-width digits, letters and punctuation to half-width (NFKC), for matching only."""
    return unicodedata.normalize("NFKC", text)


_MOJIBAKE = re.compile(
    r"\ufffd"  # replacement character left by a failed decode
    r"|\?[!;；！]"  # '?' glued to punctuation: a GBK byte pair split by a lost byte
    r"|[\u4e00-\u9fff]\?{1,2}[\u4e00-\u9fff;；]"
    r"|\?{2,}"
    r"|[\u4e00-\u9fff][\u00c0-\u024f][\u4e00-\u9fff]"  # Latin-with-diacritic inside CJK
)
_HTML_RESIDUE = re.compile(
    r"</?(?:span|div|p|br|a|img|font|strong|em|b|i|u|table|tr|td|th|li|ul|ol|h[1-6])"
    r"(?![a-zA-Z])|&(?:nbsp|lt|gt|amp|quot);"
)


def looks_garbled(text: str) -> bool:
    """True when the text shows signs of a mis-decoded page (mojibake)."""
    return _MOJIBAKE.search(text) is not None


def looks_truncated(text: str) -> bool:
    """True when the line ends in a replacement character: the copy was cut mid-character."""
    return text.rstrip().endswith("\ufffd")


def has_markup(text: str) -> bool:
    """True when HTML tags from the source web page are left in the text."""
    return _HTML_RESIDUE.search(text) is not None


_SPACES = re.compile(r"[\s\u3000]+")


def squash_spaces(text: str) -> str:
    """Remove all whitespace, which carries no meaning inside Chinese text."""
    return _SPACES.sub("", text)


def split_outside_brackets(text: str, separators: str) -> list[str]:
    """Split on any of `separators` where no bracket (`（` or `(`) is open; parts kept as is.

    `A（B、C）、D` on `、` gives `A（B、C）` and `D`. A stray closing bracket closes nothing.
    """
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char in "（(":
            depth += 1
        elif char in "）)":
            depth = max(depth - 1, 0)
        if depth == 0 and char in separators:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts
