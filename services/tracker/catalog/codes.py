"""Stable codes: the same document read again, from any file format, gives the same codes."""

from __future__ import annotations

import hashlib
import re

from services.tracker.catalog.text import fold_width, to_simplified

_NOT_WORD = re.compile(r"[^0-9A-Za-z\u4e00-\u9fff]")


def normalised_title(title: str) -> str:
    """The title reduced to simplified characters, letters and digits: what identifies it."""
    return _NOT_WORD.sub("", to_simplified(fold_width(title)))


def document_code(title: str, year: int) -> str:
    """`<year>-<8 hex>` from the normalised title, so .txt, .docx and .xlsx copies agree."""
    digest = hashlib.sha256(normalised_title(title).encode("utf-8")).hexdigest()[:8]
    return f"{year}-{digest}"


def item_key(item: str) -> str:
    """Zero-pad numeric item numbers so codes sort in document order."""
    return item.zfill(3) if item.isdigit() else item


def task_code(document: str, item: str, clause: int) -> str:
    """`<document code>-<item>-<clause>`: one task per responsibility clause of an item."""
    return f"{document}-{item_key(item)}-{clause}"


def goal_code(document: str, item: str) -> str:
    """`<document code>-G<item>` for a plan goal."""
    return f"{document}-G{item_key(item)}"
