"""A knowledge answer built from the best passage of the context block, shortened for the ear
(pure): no model, so nothing in it is invented.

The block is the context service's: items ``[1] …``, ``[2] …`` in rank order, each a chunk of a
knowledge document (a markdown heading may lead it) or a live record. The sentence that shares
the most of the question's content words wins (weekdays and numbers count double; the heading's
words count fully for the first sentence under it and half for the others; a higher-ranked item
a little more); a short winner takes the next sentence of its item along. A sentence that names
only the other side of a contrast the question names (the fixed tariff for a question about the
variable one, joining for leaving, a power cut for a gas leak), in itself, its heading or its
item, never answers (:mod:`trunkline.text.contrasts`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trunkline.gateway.core.grounding import facts_of
from trunkline.text import WEEKDAYS
from trunkline.text.contrasts import EITHER_ANSWERS, other_side_only, sides_named

_ITEM = re.compile(r"(?:^|\n)\[(\d+)\]\s")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOP = frozenset(
    """a an the and or but if of to in on at by for with from about as into is are was were be
    been being am do does did have has had can could will would shall should may might must i
    you your yours we our ours us me my it its this that these those there here what which who
    whom whose when where why how please tell know want like just also any some much many
    much more most very so than then too not no yes hi hello thanks thank okay ok get got let
    s t d ll re ve m""".split()  # noqa: SIM905 - a word list reads best as text
)
_BONUS = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday weekend weekday holiday".split()  # noqa: SIM905
)  # fmt: skip
_IN_THE_WEEK = re.compile(r"(?i)\b(?:during|in|through(?:out)?) the week\b|\bmidweek\b")
_MARKUP = re.compile(r"^[#>*\-•\s]+|[*_`]+", re.M)
MIN_SCORE = 1.0  # at least one content word of the question in the passage
# A question about an amount ("How much is ...", "What does ... cost") is answered by a sentence
# that states one ("costs 24 cents per kilowatt hour"), not by the one the heading matches best.
_ASKS_AMOUNT = re.compile(r"\bhow much\b|\b(?:cost|costs|price|prices|fee|fees|charge|rate)\b")
_AMOUNT = re.compile(
    r"(?:[$£€]\s?\d|\b\d+(?:[.,]\d+)?\s*(?:%|percent|cents?|pence|dollars?|pounds?|euros?)\b)"
)
AMOUNT_BONUS = 1.5
SIDE_BONUS = 1.0  # per contrast side the question names and the sentence says too
REFERRED_WORD = 0.5  # a question word of the sentence "it" refers back to
_REFERS_BACK = re.compile(r"(?:It|They|This|That|These|Those|There)\b")


@dataclass(frozen=True, slots=True)
class Passage:
    text: str  # what to speak
    item: int  # the block item it came from (1-based), 0 when none
    score: float


def best_passage(question: str, block: str, max_words: int = 40) -> Passage:
    """The answer to ``question`` from ``block``; empty text when no sentence shares a content
    word with the question."""
    terms = _terms(question)
    if not terms or not block.strip():
        return Passage("", 0, 0.0)
    asked = sides_named(question)
    pointed = frozenset(side for side in asked if side[0] not in EITHER_ANSWERS)
    amount = _ASKS_AMOUNT.search(question.lower()) is not None
    best: tuple[float, int, int, list[str]] | None = None
    for rank, (number, heading, sentences) in enumerate(_items(block)):
        if asked and other_side_only(asked, " ".join([heading, *sentences])):
            continue  # the item is about the other side only
        heading_terms = _terms(heading)
        said = [_terms(sentence) for sentence in sentences]
        for index, sentence in enumerate(sentences):
            if asked and other_side_only(asked, f"{heading} {sentence}"):
                continue
            words = said[index]
            score = sum(2.0 if t in _BONUS or t.isdigit() else 1.0 for t in terms & words)
            score += (1.0 if index == 0 else 0.5) * len(terms & heading_terms)
            if score < MIN_SCORE:
                continue
            if index > 0 and _REFERS_BACK.match(sentence):  # "It is closed on Sunday" after
                # "The support line is open ...": the sentence before says what "it" is
                score += REFERRED_WORD * len((terms & said[index - 1]) - words - heading_terms)
            if amount and _AMOUNT.search(sentence.lower()):
                score += AMOUNT_BONUS
            if pointed:  # the side the question takes ("leave", "variable") is its point
                score += SIDE_BONUS * len(pointed & sides_named(sentence))
            score += 0.3 / (1 + rank) + (0.1 if index == 0 else 0.0)
            if best is None or score > best[0]:
                best = (score, number, index, sentences)
    if best is None:
        return Passage("", 0, 0.0)
    score, number, index, sentences = best
    chosen = [sentences[index]]
    if index > 0 and _REFERS_BACK.match(chosen[0]):  # "It is closed ...": say what "it" is
        chosen.insert(0, sentences[index - 1])
    elif len(chosen[0].split()) < 8 and index + 1 < len(sentences):
        chosen.append(sentences[index + 1])
    return Passage(_shorten(" ".join(chosen), max_words), number, score)


def _items(block: str) -> list[tuple[int, str, list[str]]]:
    """(item number, heading, sentences) per item; a cut-off tail ("…...") is left out."""
    parts = _ITEM.split(block)
    items = []
    for i in range(1, len(parts) - 1, 2):
        number, body = int(parts[i]), parts[i + 1]
        heading = ""
        lines = []
        for line in body.splitlines():
            if line.lstrip().startswith("#"):
                heading += " " + _MARKUP.sub("", line)
            elif line.strip():
                lines.append(_MARKUP.sub("", line).strip())
        text = " ".join(lines)
        sentences = [s.strip() for s in _SENTENCE.split(text) if s.strip()]
        if sentences and sentences[-1].endswith("..."):
            sentences.pop()
        items.append((number, heading.strip(), sentences))
    return items


def _terms(text: str) -> set[str]:
    """Content words, stemmed, plus every weekday a range or group in ``text`` spans ("Monday
    to Friday" answers a question about Thursday; "during the week" asks about weekdays)."""
    words = {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP}
    days = {f[8:] for f in facts_of(text, support=True) if f.startswith("weekday:")}
    if _IN_THE_WEEK.search(text):
        days |= set(WEEKDAYS[:5])
    return words | days


def _stem(word: str) -> str:
    """A crude stem that makes close/closed/closes and pay/payment meet."""
    for suffix in ("ments", "ment", "ings", "ing", "es", "ed", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def _shorten(text: str, max_words: int) -> str:
    """At most ``max_words`` words, cut at the last comma or semicolon that keeps it so."""
    text = re.sub(r"\s*\([^)]*\)", "", text)
    words = text.split()
    if len(words) <= max_words:
        return text
    cut = " ".join(words[:max_words])
    at = max(cut.rfind(","), cut.rfind(";"))
    cut = cut[:at] if at > len(cut) // 2 else cut
    return cut.rstrip(" ,;") + "."


def has_content(text: str) -> bool:
    """Whether ``text`` holds a content word ("Thank you." and "Okay, great." hold none)."""
    return bool({w for w in _WORD.findall(text.lower()) if w not in _STOP} - _COURTESY)


_COURTESY = frozenset({"great", "good", "fine", "perfect", "alright", "right", "cool", "much"})
