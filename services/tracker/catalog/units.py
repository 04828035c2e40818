"""Unit names (责任单位): normalisation, aliases, group units and splitting unit lists.

A name is normalised to simplified characters, no whitespace, full-width brackets and no
trailing 等, then mapped to its canonical name: `市外办（市港澳办）`, `市港澳办` and the
traditional `市外辦` are all `市外办`. Group names (`市政府各部门`, `相关区人民政府`,
`有关部门`, `各区人民政府`) are units of their own kind, for the office to expand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from services.tracker.catalog.text import split_outside_brackets, squash_spaces, to_simplified

__all__ = [
    "BUILTIN_ALIASES",
    "UnitKind",
    "UnitRegistry",
    "normalise_unit_name",
    "split_units",
    "to_simplified",
    "unit_kind",
]

UnitKind = Literal["agency", "group"]

# One organ, two names, or a common short form: matching must treat them as one unit.
BUILTIN_ALIASES: Mapping[str, str] = {
    "市港澳办": "市外办",
    "市政府港澳办": "市外办",
    "市政府外办": "市外办",
    "市发改委": "市发展改革委",
    "市工信局": "市工业和信息化局",
    "市人力社保局": "市人社局",
    "市住建委": "市住房城乡建设委",
    "市规资局": "市规划资源局",
    "市卫健委": "市卫生健康委",
    "市文旅局": "市文化和旅游局",
    "市市场监管局": "市市场监管委",
    "人行天津分行": "人民银行天津分行",
}

_GROUP = re.compile(
    r"^(?:市政府各|市各|各有关|各相关|市有关|市相关|市级有关|有关|相关|其他有关|各)"
    r"|^(?:涉农区|环城四区|中心城区|远郊区|滨海新区和环城四区)(?:人民)?政府$"
    r"|各(?:部门|单位|委|区)"
)
# How organ names end; used to tell a unit from a phrase that happens to sit in brackets.
_ORGAN_SUFFIX = re.compile(
    r"(?:办|局|委|厅|院|会|室|中心|部|处|组|队|社|行|署|司|馆|所|站|关|联|协|府|集团|门|位|校|台)$"
)
_ALIAS_IN_TEXT = re.compile(
    r"(?P<name>[^\s、，,；;（()）:：]{2,20})[（(](?P<alias>[^（()）、，,]{2,20})[）)]"
)
_LOCAL_PREFIXES = ("市", "区", "县", "天津")
_BRACKETED_ALIAS = re.compile(r"^(?P<name>[^（）]+)（(?P<alias>[^（）]+)）$")
_TRAILING_ETC = re.compile(r"(?:等(?:单位|部门)?)$")
# Group phrases whose own 、 must not split them.
_PROTECTED = ("市政府各委、办、局", "各委、办、局", "各委、办、局、")
_SEPARATORS = "、，,；;/\n\t "


def _basic_normalise(name: str) -> str:
    name = to_simplified(squash_spaces(name))
    name = name.replace("(", "（").replace(")", "）")
    name = name.strip("，,。；;、：:")
    return _TRAILING_ETC.sub("", name)


@dataclass
class UnitRegistry:
    """Canonical unit names for one import: the built-in aliases plus those a document states.

    A document that writes `市外办（市港澳办）` teaches the registry that the two names are
    one unit; `learn_from_text` does that before parsing so the order of mentions is moot.
    """

    aliases: dict[str, str] = field(default_factory=lambda: dict(BUILTIN_ALIASES))

    def canonical(self, name: str) -> str:
        """The canonical name of a unit as written (any script, with or without its alias)."""
        name = _basic_normalise(name)
        match = _BRACKETED_ALIAS.match(name)
        if match and _ORGAN_SUFFIX.search(match["alias"]) and _ORGAN_SUFFIX.search(match["name"]):
            name = match["name"]
        seen: set[str] = set()
        # Follow alias chains (短名 → 名 → 正式名) without looping on a bad table.
        while name in self.aliases and name not in seen:
            seen.add(name)
            name = self.aliases[name]
        return name

    def learn(self, name: str, alias: str) -> None:
        """Record that `alias` names the same unit as `name`."""
        canonical_name = self.canonical(name)
        alias = _basic_normalise(alias)
        canonical_alias = self.canonical(alias)
        if not alias or canonical_alias == canonical_name:
            return
        if alias in self.aliases:
            # The alias already belongs to a unit: the bracketed name joins that unit rather
            # than taking the alias away from it.
            self.aliases[canonical_name] = canonical_alias
        else:
            self.aliases[alias] = canonical_name

    def learn_from_text(self, text: str) -> None:
        """Learn every `市X（市Y）` pair in the text where both look like organ names."""
        for match in _ALIAS_IN_TEXT.finditer(to_simplified(text)):
            name, alias = match["name"], match["alias"]
            # The pair often follows a verb (由市外办（市港澳办）牵头): keep from the prefix on.
            starts = [name.find(prefix) for prefix in _LOCAL_PREFIXES if prefix in name]
            name = name[min(starts) :] if starts else name
            if (
                name.startswith(_LOCAL_PREFIXES)
                and alias.startswith(_LOCAL_PREFIXES)
                and _ORGAN_SUFFIX.search(name)
                and _ORGAN_SUFFIX.search(alias)
            ):
                self.learn(name, alias)

    def aliases_of(self, name: str) -> list[str]:
        """Every other name known for this unit."""
        canonical = self.canonical(name)
        return sorted(alias for alias, target in self.aliases.items() if target == canonical)


_BUILTIN_REGISTRY = UnitRegistry()


def normalise_unit_name(name: str, registry: UnitRegistry | None = None) -> str:
    """The canonical, simplified name of a unit as written."""
    return (registry or _BUILTIN_REGISTRY).canonical(name)


def unit_kind(name: str) -> UnitKind:
    """Kind of a unit: group for collective names the office must expand (各区人民政府)."""
    return "group" if _GROUP.search(_basic_normalise(name)) else "agency"


def _split_raw(text: str) -> list[str]:
    """Split on list separators outside brackets, keeping protected group phrases whole."""
    placeholders: dict[str, str] = {}
    for index, phrase in enumerate(_PROTECTED):
        token = f"\u0000{index}\u0000"
        if phrase in text:
            text = text.replace(phrase, token)
            placeholders[token] = phrase.rstrip("、")
    names = split_outside_brackets(text, _SEPARATORS)
    restored = []
    for name in names:
        for token, phrase in placeholders.items():
            name = name.replace(token, phrase)
        restored.append(name)
    return restored


def split_units(text: str | Iterable[str], registry: UnitRegistry | None = None) -> list[str]:
    """Split a unit list (`市发展改革委、市人社局等`, or one name per line) into canonical names.

    Order is kept and repeats are dropped: in a responsibility table the first unit is the
    lead, so order carries meaning.
    """
    chunks = [text] if isinstance(text, str) else list(text)
    result: list[str] = []
    for chunk in chunks:
        for raw in _split_raw(chunk):
            name = normalise_unit_name(raw, registry)
            if name and name not in result:
                result.append(name)
    return result


def is_plausible_unit(name: str) -> bool:
    """True when a string could be a unit name rather than a phrase of running text."""
    return 2 <= len(name) <= 30 and not re.search(r"[。；;：:，,]", name)


def looks_like_organ(name: str) -> bool:
    """True when a name ends like an organ (局, 委, 办, 分行 …) or is a group unit."""
    return unit_kind(name) == "group" or _ORGAN_SUFFIX.search(_basic_normalise(name)) is not None
