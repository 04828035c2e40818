"""The shared examples as a newer producer would send them: with fields this code never saw."""

from __future__ import annotations

import json
from typing import Any

from shared.events import EXAMPLES_DIR

UNKNOWN_FIELD = "added_in_a_later_release"
# Free-form payloads: any key there is data, not schema.
OPEN_OBJECTS = frozenset({"details"})


def with_unknown_fields(value: Any) -> Any:
    """`value` with an unknown field added to every object of the schema, nested ones too."""
    if isinstance(value, dict):
        grown = {
            key: item if key in OPEN_OBJECTS else with_unknown_fields(item)
            for key, item in value.items()
        }
        return {**grown, UNKNOWN_FIELD: {"anything": ["a", 1, None]}}
    if isinstance(value, list):
        return [with_unknown_fields(item) for item in value]
    return value


def grown_example(name: str) -> bytes:
    """The example `shared/examples/<name>` on the wire, grown by unknown fields."""
    data = json.loads((EXAMPLES_DIR / name).read_bytes())
    return json.dumps(with_unknown_fields(data), ensure_ascii=False).encode()
