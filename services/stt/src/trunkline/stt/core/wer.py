"""Word error rate of a transcript against a reference, after a normalization that forgives
what is only a way of writing ("$95" = "95 dollars" = "ninety five dollars", "3 p.m." = "3 pm",
"4 4 1 7 2 9" = "441729", "centre" = "center") and counts what a caller would notice.

Pure; used by ``make bench-stt`` and by anything else that scores transcripts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from trunkline.text import read_number

_SPELLING = {
    "centre": "center",
    "colour": "color",
    "dr": "doctor",
    "mr": "mister",
    "mrs": "missus",
    "ok": "okay",
    "st": "street",
    "percent": "percent",
    "%": "percent",
    "&": "and",
}
_CURRENCY = {"$": "dollars", "£": "pounds", "€": "euros"}
_MONEY = re.compile(r"([$£€])\s?(\d[\d,]*(?:\.\d+)?)")
_MERIDIEM = re.compile(r"\b([ap])\.\s?m\b\.?|(?<=\d)([ap])m\b", re.IGNORECASE)
_CLOCK = re.compile(r"\b(\d{1,2}):(\d\d)\b")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|%|&")


def _number_words(tokens: list[str]) -> list[str]:
    """Runs of number words as digits: "one hundred and fifty" -> "150", "ten thirty" ->
    "10", "30" (a place already filled starts a new number; the shared reader decides)."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        found = read_number(tokens, i)
        if found is None:
            out.append(tokens[i])
            i += 1
        else:
            out.append(str(found[0]))
            i += found[1]
    return out


def _join_digits(tokens: list[str]) -> list[str]:
    """Adjacent digit groups as one number ("4 4 1 7 2 9" -> "441729")."""
    out: list[str] = []
    for token in tokens:
        if token.isdigit() and out and out[-1].isdigit():
            out[-1] += token
        else:
            out.append(token)
    return out


def normalize(text: str) -> list[str]:
    """The words of ``text`` as compared: lower case, no punctuation, numbers as digits."""
    text = _THOUSANDS.sub("", text)
    text = _MONEY.sub(lambda m: f"{m.group(2)} {_CURRENCY[m.group(1)]}", text)
    text = _MERIDIEM.sub(lambda m: f" {(m.group(1) or m.group(2)).lower()}m", text)
    text = _CLOCK.sub(r"\1 \2", text)
    text = text.lower().replace("-", " ").replace("\u2019", "'")
    text = re.sub(r"(\d)\.(\d)", r"\1 point \2", text)
    tokens = [_SPELLING.get(t, t) for t in _TOKEN.findall(text)]
    return _join_digits(_number_words(tokens))


@dataclass(frozen=True, slots=True)
class WordErrors:
    """Edits that turn the reference into the hypothesis, and the reference's length."""

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """WER; an empty reference scores 0 when nothing was heard, else 1."""
        if self.reference_words == 0:
            return 0.0 if self.errors == 0 else 1.0
        return self.errors / self.reference_words

    def __add__(self, other: WordErrors) -> WordErrors:
        return WordErrors(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_words + other.reference_words,
        )


def word_errors_of(reference: Sequence[str], hypothesis: Sequence[str]) -> WordErrors:
    """Levenshtein alignment of two word lists (substitution, deletion, insertion cost 1)."""
    n, m = len(reference), len(hypothesis)
    # cost[j]: (total, subs, dels, ins) for reference[:i] vs hypothesis[:j]
    prev = [(j, 0, 0, j) for j in range(m + 1)]
    for i in range(1, n + 1):
        row = [(i, 0, i, 0)]
        for j in range(1, m + 1):
            diag = prev[j - 1]
            same = reference[i - 1] == hypothesis[j - 1]
            sub = (diag[0] + (not same), diag[1] + (not same), diag[2], diag[3])
            up = prev[j]
            dele = (up[0] + 1, up[1], up[2] + 1, up[3])
            left = row[j - 1]
            ins = (left[0] + 1, left[1], left[2], left[3] + 1)
            row.append(min(sub, dele, ins))
        prev = row
    _, subs, dels, adds = prev[m]
    return WordErrors(subs, dels, adds, n)


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    """Word errors of ``hypothesis`` against ``reference``, both normalized."""
    return word_errors_of(normalize(reference), normalize(hypothesis))


def missed_terms(reference: str, hypothesis: str, terms: Sequence[str]) -> tuple[int, int]:
    """(terms said, terms missed): each vocabulary term whose words occur in ``reference``,
    and of those the ones whose words do not all occur in ``hypothesis``."""
    said_words = " " + " ".join(normalize(reference)) + " "
    heard_words = " " + " ".join(normalize(hypothesis)) + " "
    said = missed = 0
    for term in terms:
        words = " " + " ".join(normalize(term)) + " "
        if words.strip() and words in said_words:
            said += 1
            missed += words not in heard_words
    return said, missed
