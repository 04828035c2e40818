"""Text fields that refuse hostile characters, and say which field and why.

Every free-text field of a request goes through one of these types. They refuse NUL and
other control characters (Postgres cannot store NUL; the rest corrupt logs and exports),
lone surrogates (they cannot be encoded as UTF-8, so they would fail later, far from the
request), bidirectional overrides (they make a text read differently from what it holds)
and Unicode non-characters. HTML and template syntax are kept verbatim: they are data,
escaped wherever a text is rendered.

The OpenAPI schema carries the same rule as a `pattern`, so clients and schemathesis know
what is accepted; validation itself is procedural, to name the offending character.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

# Written as regex escapes, not characters, so the pattern survives JSON and ECMA regexes.
_CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_OTHERS = r"\u202a-\u202e\u2066-\u2069\ufdd0-\ufdef\ufffe\uffff"
_LINE_BREAKS = r"\t\n\r\u2028\u2029"
# Not in the documented pattern: a JSON schema regex reads strings as UTF-16, where this
# range would also refuse every character beyond the BMP. JSON text cannot carry a lone
# surrogate except as an escape, which `httpguard.RequestGuard` refuses first.
_SURROGATES = r"\ud800-\udfff"

MULTI_LINE_FORBIDDEN = f"{_CONTROLS}{_OTHERS}"
SINGLE_LINE_FORBIDDEN = f"{_CONTROLS}{_LINE_BREAKS}{_OTHERS}"


def _forbidden(multiline: bool, also: str) -> str:
    base = MULTI_LINE_FORBIDDEN if multiline else SINGLE_LINE_FORBIDDEN
    return base + "".join(re.escape(c) for c in also)


@functools.lru_cache(maxsize=32)
def _compiled(multiline: bool, also: str) -> re.Pattern[str]:
    return re.compile(f"[{_forbidden(multiline, also)}{_SURROGATES}]")


def documented_pattern(*, multiline: bool, required: bool, also: str = "") -> str:
    """The JSON-schema pattern equivalent to `check_text` for these options."""
    forbidden = _forbidden(multiline, also)
    if required:
        return f"^[^{forbidden}]*[^\\s{forbidden}][^{forbidden}]*$"
    return f"^[^{forbidden}]*$"


def _describe(char: str) -> str:
    code = ord(char)
    if code == 0:
        return "NUL 字符 (NUL byte)"
    if 0xD800 <= code <= 0xDFFF:
        return f"孤立代理项 U+{code:04X} (lone surrogate, not valid Unicode)"
    if char in "\t\n\r\u2028\u2029":
        return f"换行或制表符 U+{code:04X} (line break or tab in a single-line field)"
    if 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069:
        return f"双向文本控制符 U+{code:04X} (bidirectional override)"
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return f"控制字符 U+{code:04X} (control character)"
    if 0xFDD0 <= code <= 0xFDEF or code in (0xFFFE, 0xFFFF):
        return f"非字符 U+{code:04X} (Unicode non-character)"
    return f"不允许的字符 {char!r} (character not allowed here)"


def check_text(value: str, *, multiline: bool, required: bool, also: str = "") -> str:
    """`value` stripped of surrounding whitespace; ValueError naming what is wrong with it.

    `also` names further characters this field refuses.
    """
    bad = _compiled(multiline, also).search(value)
    if bad is not None:
        raise ValueError(f"第 {bad.start() + 1} 个字符是{_describe(bad.group())}")
    stripped = value.strip()
    if required and not stripped:
        raise ValueError("不能为空 (must not be blank)")
    return stripped


@dataclass(frozen=True)
class CleanText:
    """Annotation for a text field: `Annotated[str, Field(max_length=…), SINGLE_LINE]`.

    Put it after the `Field`, so length limits are checked as string limits first.
    """

    multiline: bool = False
    required: bool = True
    also: str = ""

    def validate(self, value: Any) -> Any:
        """Check and strip strings; anything else is left for the type to refuse."""
        if isinstance(value, str):
            return check_text(
                value, multiline=self.multiline, required=self.required, also=self.also
            )
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self.validate, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        target = handler.resolve_ref_schema(json_schema)
        pattern = documented_pattern(
            multiline=self.multiline, required=self.required, also=self.also
        )
        branches = [b for b in target.get("anyOf", [target]) if b.get("type") == "string"]
        for branch in branches:
            branch["pattern"] = pattern
            if self.required:
                branch["minLength"] = max(1, branch.get("minLength", 0))
        return json_schema


SINGLE_LINE = CleanText(multiline=False, required=True)
OPTIONAL_SINGLE_LINE = CleanText(multiline=False, required=False)
MULTI_LINE = CleanText(multiline=True, required=True)
OPTIONAL_MULTI_LINE = CleanText(multiline=True, required=False)
# A path segment: `%` would make a client's encoding ambiguous, `/` would split the path.
PATH_SEGMENT = CleanText(multiline=False, required=True, also="%/")


def find_forbidden(value: str, *, multiline: bool = True) -> tuple[int, str] | None:
    """(1-based position, description) of the first forbidden character, if any."""
    bad = _compiled(multiline, "").search(value)
    if bad is None:
        return None
    return bad.start() + 1, _describe(bad.group())
