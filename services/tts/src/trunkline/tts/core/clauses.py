"""Split text into clauses: the unit synthesized at once, so first audio comes early.

A clause ends at a sentence end (. ! ? …) or, once it holds ``min_words`` words, at a comma,
semicolon, colon or dash; a clause that grows past ``max_chars`` without punctuation is cut at
a word boundary. Decimal points and abbreviations like "Dr." do not end a clause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SENTENCE_END = frozenset(".!?…")
_SOFT_END = frozenset(",;:\u2014\u2013")  # comma, semicolon, colon, em/en dash
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "jr", "sr", "no", "approx"}
)
_LAST_WORD = re.compile(r"([\w.]+)\.$")


def _is_abbreviation(text: str) -> bool:
    match = _LAST_WORD.search(text)
    return match is not None and match.group(1).lower() in _ABBREVIATIONS


@dataclass
class ClauseSplitter:
    """Incremental: ``feed`` text as it streams in, get the clauses completed so far; ``flush``
    returns what is left at the end."""

    min_words: int = 3
    max_chars: int = 160
    _buffer: str = field(default="", init=False)

    def feed(self, text: str) -> list[str]:
        self._buffer += text
        clauses: list[str] = []
        while (cut := self._next_cut()) is not None:
            clause, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:].lstrip()
            if clause:
                clauses.append(clause)
        return clauses

    def flush(self) -> list[str]:
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []

    def _next_cut(self) -> int | None:
        buf = self._buffer
        # A boundary counts only once the next character is known to be a space.
        for index in range(len(buf) - 1):
            char = buf[index]
            if not buf[index + 1].isspace():
                continue
            head = buf[: index + 1]
            if char in _SENTENCE_END and not (char == "." and _is_abbreviation(head)):
                return index + 1
            if char in _SOFT_END and len(head.split()) >= self.min_words:
                return index + 1
            if index + 1 >= self.max_chars:
                return index + 1
        return None


def split_clauses(text: str, *, min_words: int = 3, max_chars: int = 160) -> list[str]:
    """All clauses of a complete text."""
    splitter = ClauseSplitter(min_words=min_words, max_chars=max_chars)
    return splitter.feed(text) + splitter.flush()
