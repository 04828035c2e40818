"""YAML loading that remembers where every key came from, so validation errors can name a line."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in a source file."""

    line: int
    column: int


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration file, with where it is."""

    source: str
    line: int
    column: int
    where: str
    message: str

    def __str__(self) -> str:
        place = f"{self.source}:{self.line}:{self.column}"
        if self.where:
            return f"{place}: {self.where}: {self.message}"
        return f"{place}: {self.message}"


class MarkedFileError(ValueError):
    """A configuration file is malformed; every problem names its file, line and column."""

    def __init__(self, kind: str, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.kind = kind
        first = self.problems[0] if self.problems else None
        self.source = first.source if first else ""
        self.line = first.line if first else 0
        self.column = first.column if first else 0
        lines = [f"invalid {kind}:"] + [f"  {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


def _position(mark: yaml.Mark | None) -> Position:
    # PyYAML marks are 0-based; editors and people count from 1.
    if mark is None:
        return Position(1, 1)
    return Position(mark.line + 1, mark.column + 1)


def format_loc(loc: Loc) -> str:
    """Render a validation location as `levels[1].recipients[0].role`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class _MarkedBuilder:
    def __init__(self, loader: yaml.SafeLoader, source: str) -> None:
        self.loader = loader
        self.source = source
        self.marks: dict[Loc, Position] = {}
        self.problems: list[Problem] = []

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        if isinstance(node, yaml.MappingNode):
            # Resolves `<<: *anchor` merges the way yaml.safe_load would.
            self.loader.flatten_mapping(node)
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
                if not isinstance(key, str | int | bool | float) and key is not None:
                    pos = _position(key_node.start_mark)
                    self.problems.append(
                        Problem(
                            self.source,
                            pos.line,
                            pos.column,
                            format_loc(loc),
                            "mapping keys must be plain scalars",
                        )
                    )
                    continue
                child_loc = (*loc, key if isinstance(key, str | int) else str(key))
                pos = _position(key_node.start_mark)
                if key in result:
                    # PyYAML silently keeps the last duplicate; a policy that says two
                    # different things about one key is a mistake worth stopping for.
                    self.problems.append(
                        Problem(
                            self.source,
                            pos.line,
                            pos.column,
                            format_loc(child_loc),
                            "duplicate key",
                        )
                    )
                    continue
                self.marks[child_loc] = pos
                result[key] = self.build(value_node, child_loc)
            return result
        if isinstance(node, yaml.SequenceNode):
            items: list[Any] = []
            for index, item_node in enumerate(node.value):
                child_loc = (*loc, index)
                self.marks[child_loc] = _position(item_node.start_mark)
                items.append(self.build(item_node, child_loc))
            return items
        return self.loader.construct_object(node, deep=True)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class MarkedDocument:
    """A parsed YAML document and the position of every key and list item in it."""

    source: str
    data: Any
    marks: Mapping[Loc, Position]

    def position_of(self, loc: Loc) -> Position:
        """The position of the deepest part of `loc` that exists in the document."""
        for end in range(len(loc), -1, -1):
            found = self.marks.get(tuple(loc[:end]))
            if found is not None:
                return found
        return Position(1, 1)

    def problem(self, loc: Loc, message: str) -> Problem:
        """A problem located at `loc` in this document."""
        pos = self.position_of(loc)
        return Problem(self.source, pos.line, pos.column, format_loc(loc), message)

    def problems_from(self, error: ValidationError) -> list[Problem]:
        """Translate pydantic errors into problems that name a line and column."""
        problems: list[Problem] = []
        details = error.errors(include_url=False)
        locs = [tuple(detail["loc"]) for detail in details]
        for detail in details:
            loc: Loc = tuple(detail["loc"])
            # pydantic drops invalid items and then also reports the list as too short;
            # the item's own error is the useful one.
            if detail["type"] == "too_short" and any(
                len(other) > len(loc) and other[: len(loc)] == loc for other in locs
            ):
                continue
            ctx = detail.get("ctx") or {}
            # Cross-field checks raise at the model root and carry the real location.
            inner = ctx.get("loc")
            if isinstance(inner, tuple):
                loc = (*loc, *inner)
            problems.append(self.problem(loc, str(detail["msg"])))
        return problems


def load_marked(text: str, source: str, kind: str) -> MarkedDocument:
    """Parse YAML text, keeping positions; raise MarkedFileError on syntax errors or duplicates."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return MarkedDocument(source, None, {(): Position(1, 1)})
        builder = _MarkedBuilder(loader, source)
        builder.marks[()] = _position(node.start_mark)
        data = builder.build(node, ())
    except yaml.MarkedYAMLError as exc:
        pos = _position(exc.problem_mark or exc.context_mark)
        reason = " ".join(part for part in (exc.context, exc.problem) if part) or "syntax error"
        if exc.context_mark is not None and exc.problem_mark is not None:
            # The problem is often noticed far from its cause (an unclosed bracket at EOF).
            began = _position(exc.context_mark)
            reason += f" (the construct began at line {began.line}, column {began.column})"
        raise MarkedFileError(kind, [Problem(source, pos.line, pos.column, "", reason)]) from exc
    except yaml.YAMLError as exc:
        raise MarkedFileError(kind, [Problem(source, 1, 1, "", str(exc))]) from exc
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]
    if builder.problems:
        raise MarkedFileError(kind, builder.problems)
    return MarkedDocument(source, data, builder.marks)
