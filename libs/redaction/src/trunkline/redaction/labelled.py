"""The labelled PII set (``tests/data/redaction/*.yaml``) and its scoring.

A prediction is right when a finding of the same entity overlaps the labelled value; a labelled
value *leaks* when any of its characters survives redaction (whatever entity covered the rest).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from trunkline.redaction.pii import Entity, Finding, detect


class LabelledSetError(ValueError):
    """A labelled file that cannot be used; the message names the file and item."""


@dataclass(frozen=True, slots=True)
class Labelled:
    text: str
    gold: tuple[Finding, ...]
    source: str  # "file.yaml#3"


@dataclass(slots=True)
class Score:
    true_positive: int = 0
    false_positive: int = 0
    false_negative: int = 0
    leaks: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positive + self.false_positive
        return self.true_positive / found if found else 1.0

    @property
    def recall(self) -> float:
        gold = self.true_positive + self.false_negative
        return self.true_positive / gold if gold else 1.0


@dataclass(slots=True)
class Report:
    per_entity: dict[Entity, Score] = field(default_factory=lambda: {e: Score() for e in Entity})
    items: int = 0
    negatives: int = 0
    negatives_flagged: int = 0
    misses: list[str] = field(default_factory=list)  # "source: what went wrong"

    @property
    def total(self) -> Score:
        total = Score()
        for score in self.per_entity.values():
            total.true_positive += score.true_positive
            total.false_positive += score.false_positive
            total.false_negative += score.false_negative
            total.leaks += score.leaks
        return total

    def as_dict(self) -> dict[str, object]:
        def row(score: Score) -> dict[str, float | int]:
            return {
                "precision": round(score.precision, 4),
                "recall": round(score.recall, 4),
                "true_positive": score.true_positive,
                "false_positive": score.false_positive,
                "false_negative": score.false_negative,
                "leaks": score.leaks,
            }

        return {
            "items": self.items,
            "negatives": self.negatives,
            "negatives_flagged": self.negatives_flagged,
            "per_entity": {e.value: row(s) for e, s in self.per_entity.items()},
            "total": row(self.total),
            "misses": self.misses,
        }


def load_labelled(folder: Path) -> list[Labelled]:
    """Every item of every ``*.yaml`` in ``folder``; a value not found in its text is an error."""
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise LabelledSetError(f"{folder}: no *.yaml labelled files")
    items = []
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise LabelledSetError(f"{path}: expected a list of {{text, entities}} items")
        for index, raw in enumerate(data):
            items.append(_item(raw, f"{path.name}#{index + 1}"))
    return items


def _item(raw: object, source: str) -> Labelled:
    if not isinstance(raw, dict) or not isinstance(raw.get("text"), str):
        raise LabelledSetError(f"{source}: an item needs a text string")
    text = raw["text"]
    gold, at = [], 0
    for entity in raw.get("entities") or []:
        try:
            kind = Entity(entity["type"])
            value = str(entity["value"])
        except (KeyError, TypeError, ValueError) as exc:
            raise LabelledSetError(f"{source}: bad entity {entity!r} ({exc})") from exc
        start = text.find(value, at)
        if start < 0:
            start = text.find(value)
        if start < 0:
            raise LabelledSetError(f"{source}: value {value!r} is not in the text")
        gold.append(Finding(kind, start, start + len(value)))
        at = start + len(value)
    return Labelled(text, tuple(gold), source)


def _overlaps(a: Finding, b: Finding) -> bool:
    return a.start < b.end and b.start < a.end


def score(items: Iterable[Labelled]) -> Report:
    report = Report()
    for item in items:
        report.items += 1
        found = detect(item.text)
        if not item.gold:
            report.negatives += 1
            report.negatives_flagged += bool(found)
        matched: set[int] = set()
        for gold in item.gold:
            hit = next(
                (
                    i
                    for i, f in enumerate(found)
                    if i not in matched and f.entity is gold.entity and _overlaps(f, gold)
                ),
                None,
            )
            entity_score = report.per_entity[gold.entity]
            if hit is None:
                entity_score.false_negative += 1
                report.misses.append(
                    f"{item.source}: missed {gold.entity} {gold.text(item.text)!r}"
                )
            else:
                matched.add(hit)
                entity_score.true_positive += 1
            covered: set[int] = set()
            for f in found:
                covered.update(range(f.start, f.end))
            if any(
                ch not in covered and not item.text[ch].isspace() and item.text[ch] not in ",.-"
                for ch in range(gold.start, gold.end)
            ):
                entity_score.leaks += 1
        for i, f in enumerate(found):
            if i not in matched:
                report.per_entity[f.entity].false_positive += 1
                report.misses.append(
                    f"{item.source}: wrongly flagged {f.entity} {f.text(item.text)!r}"
                )
    return report
