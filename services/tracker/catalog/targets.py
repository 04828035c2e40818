"""Numeric targets named in task text: 新增就业4万人 → (新增就业, 40000, 人).

A target is a clause (between ，。；) that ends in a number and a measure word, with the
indicator before it and no other number in the clause. Clauses where the number comes
first (`孵化培育20家社会组织`) or where several numbers compete (`由60%最高提至90%`) are
not read: a wrong target is worse than a missing one. Each target carries its direction:
at least (以上, 不低于, 增长X%, 达到), at most (以内, 以下, 不超过, 控制在, 低于) or about (左右).
"""

from __future__ import annotations

import re
from decimal import Decimal

from services.tracker.catalog.model import Target
from services.tracker.catalog.text import fold_width
from shared.vocabulary import TargetDirection

# Longest first so 个百分点 wins over 个 and 平方公里 over 公里.
_MEASURE_WORDS = sorted(
    [
        "个百分点", "%", "人次", "人", "个", "家", "户", "张", "所", "座", "项", "件", "套",
        "台", "辆", "条", "处", "场", "次", "亩", "公顷", "平方米", "平方公里", "公里",
        "千米", "米", "吨", "千瓦时", "千瓦", "元", "美元", "欧元", "间", "栋", "名", "位",
        "株", "棵", "批", "部", "块", "根", "口", "片", "标箱", "床",
    ],
    key=len,
    reverse=True,
)  # fmt: skip
_MULTIPLIERS = {"万": Decimal(10_000), "亿": Decimal(100_000_000), "千": Decimal(1_000)}
_QUALIFIERS = "以上|以下|以内|左右|多|余"

_TARGET_AT_END = re.compile(
    r"(?P<number>\d+(?:\.\d+)?)(?P<multiplier>[万亿千])?"
    rf"(?P<measure>{'|'.join(re.escape(word) for word in _MEASURE_WORDS)})"
    rf"(?P<qualifier>{_QUALIFIERS})?$"
)
_CLAUSE_BREAK = re.compile(r"[，,。；;：:！!？?]")
_LEADING_FILLER = re.compile(r"^(?:(?:19|20)\d{2}年|全年|年内|今年|力争|确保|争取|努力|累计|其中)+")
_TRAILING_VERB = re.compile(
    r"(?:达到|达|超过|突破|控制在|稳定在|保持在|保持|提高到|提高至|提升到|提升至|扩大到|"
    r"增加到|增至|不低于|不少于|不超过|不高于|低于|少于|为|在|至|到)$"
)
_QUOTES = "“”‘’\"'《》「」 "
# How the target is met (docs/domain.md §5 Progress): the qualifier after the number wins
# (控制在5.5%左右 is about), else the verb before it; more is better unless it says otherwise.
_QUALIFIER_DIRECTIONS = {
    "以上": TargetDirection.AT_LEAST,
    "多": TargetDirection.AT_LEAST,
    "余": TargetDirection.AT_LEAST,
    "以下": TargetDirection.AT_MOST,
    "以内": TargetDirection.AT_MOST,
    "左右": TargetDirection.ABOUT,
}
_AT_MOST_VERB = re.compile(r"(?:不超过|控制在|低于|不高于|少于|压减到|压减至|降至|降到)$")


def _direction(before_number: str, qualifier: str) -> TargetDirection:
    if qualifier in _QUALIFIER_DIRECTIONS:
        return _QUALIFIER_DIRECTIONS[qualifier]
    if _AT_MOST_VERB.search(before_number):
        return TargetDirection.AT_MOST
    return TargetDirection.AT_LEAST


def _plain_decimal(value: Decimal) -> Decimal:
    # 4万 is 40000, not 4E+4: keep integral values free of exponents and trailing zeros.
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def _target_from_clause(clause: str) -> Target | None:
    clause = clause.strip(_QUOTES)
    match = _TARGET_AT_END.search(clause)
    if match is None:
        return None
    before_number = clause[: match.start()]
    indicator = _LEADING_FILLER.sub("", before_number)
    indicator = _TRAILING_VERB.sub("", indicator).strip(_QUOTES + "、")
    if not indicator or re.search(r"\d", indicator) or not re.search(r"[\u4e00-\u9fff]", indicator):
        return None
    value = Decimal(match["number"])
    if match["multiplier"]:
        value *= _MULTIPLIERS[match["multiplier"]]
    return Target(
        indicator=indicator,
        value=_plain_decimal(value),
        unit=match["measure"],
        qualifier=match["qualifier"] or "",
        direction=_direction(before_number, match["qualifier"] or ""),
    )


def extract_targets(text: str) -> list[Target]:
    """Every numeric target the text states, in order."""
    targets: list[Target] = []
    for clause in _CLAUSE_BREAK.split(fold_width(text)):
        target = _target_from_clause(clause)
        if target is not None and target not in targets:
            targets.append(target)
    return targets
