"""The semantic cache's hit rule: when a stored answer may answer a new question (pure).

Cosine similarity alone never decides (DESIGN.md §3). The nearest stored questions in scope
(:class:`~trunkline.context.core.types.CachedAnswer` candidates, best first) are screened:

1. a candidate whose key terms disagree with the question's is never served
   (:mod:`~trunkline.context.core.key_terms`: numbers, times, days, money, names, negation,
   opposite verbs ...);
2. of the rest, the first whose cosine reaches ``threshold`` is the hit, or, where an
   equivalence check (a cross-encoder behind the rerank endpoint) scored them, the best
   scoring one at or above ``equivalence_threshold`` among those at or above ``verify_floor``.
   When the check failed, the embedded rule applies with the stricter ``fallback_threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trunkline.context.core.key_terms import disagreements, key_terms
from trunkline.context.core.types import CachedAnswer


@dataclass(frozen=True, slots=True)
class HitRule:
    threshold: float = 0.75  # min cosine with agreeing key terms (tuned on the labelled set)
    key_terms: bool = True  # False only to measure what cosine alone would do
    verify_floor: float = 0.6  # min cosine for a candidate to reach the equivalence check
    equivalence_threshold: float = 0.5  # min equivalence score (cross-encoder) for a hit
    fallback_threshold: float = 0.9  # the embedded rule's cosine when the check failed

    @property
    def floor(self) -> float:
        """The lowest cosine any rule can accept: candidates below it need not be fetched."""
        return min(self.threshold, self.verify_floor, self.fallback_threshold)


@dataclass(frozen=True, slots=True)
class Screened:
    """A candidate and why it can (``conflicts`` empty) or cannot be served."""

    candidate: CachedAnswer
    conflicts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Verdict:
    hit: CachedAnswer | None
    detail: str  # for the stage report and the span: why it hit or missed


def screen(query: str, candidates: Sequence[CachedAnswer], rule: HitRule) -> list[Screened]:
    """Each candidate at or above the rule's floor with its key-term conflicts, best first."""
    terms = key_terms(query)
    return [
        Screened(c, disagreements(terms, key_terms(c.query)) if rule.key_terms else ())
        for c in sorted(candidates, key=lambda c: -c.similarity)
        if c.similarity >= rule.floor
    ]


def to_verify(screened: Sequence[Screened], rule: HitRule) -> list[CachedAnswer]:
    """The candidates an equivalence check should score: agreeing, at or above the floor."""
    return [
        s.candidate
        for s in screened
        if not s.conflicts and s.candidate.similarity >= rule.verify_floor
    ]


def decide(
    screened: Sequence[Screened],
    rule: HitRule,
    equivalence: Sequence[float] | None = None,
    *,
    check_failed: bool = False,
) -> Verdict:
    """The hit among ``screened`` (from :func:`screen`), if any.

    ``equivalence``: one score per :func:`to_verify` candidate, in that order, where an
    equivalence check ran; ``check_failed``: it was configured but did not answer.
    """
    if equivalence is not None:
        verdict = _by_equivalence(to_verify(screened, rule), equivalence, rule)
        return verdict if verdict.detail else Verdict(None, _miss(screened, rule.verify_floor))
    threshold = rule.fallback_threshold if check_failed else rule.threshold
    for s in screened:
        if not s.conflicts and s.candidate.similarity >= threshold:
            label = "hit (fallback)" if check_failed else "hit"
            return Verdict(s.candidate, f"{label} {s.candidate.similarity:.3f}")
    return Verdict(None, _miss(screened, threshold))


def _by_equivalence(
    verified: Sequence[CachedAnswer], scores: Sequence[float], rule: HitRule
) -> Verdict:
    if len(scores) != len(verified):
        raise ValueError(f"{len(scores)} equivalence scores for {len(verified)} candidates")
    best = max(zip(scores, verified, strict=True), key=lambda p: p[0], default=None)
    if best is not None and best[0] >= rule.equivalence_threshold:
        score, hit = best
        return Verdict(hit, f"hit {hit.similarity:.3f}, equivalence {score:.2f}")
    if best is None:
        return Verdict(None, "")  # nothing reached the check: the screen says why
    return Verdict(None, f"miss: equivalence {best[0]:.2f} < {rule.equivalence_threshold:.2f}")


def _miss(screened: Sequence[Screened], threshold: float) -> str:
    if not screened:
        return "miss"
    top = screened[0]
    if top.conflicts:
        return (
            f"miss: key terms differ ({'; '.join(top.conflicts)}) at {top.candidate.similarity:.3f}"
        )
    return f"miss: {top.candidate.similarity:.3f} < {threshold:.2f}"
