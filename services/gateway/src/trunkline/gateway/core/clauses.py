"""Split streamed LLM text into clauses that TTS can start on before the reply is complete."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)")
_CLAUSE_END = re.compile(r"[,;:—]+(?=\s)")


class ClauseSplitter:
    """Accumulates text deltas; yields a clause at each sentence end, or at a comma/semicolon once
    the pending clause has at least ``min_clause_words`` words (short pieces sound choppy)."""

    def __init__(self, min_clause_words: int = 3, max_clause_chars: int = 200) -> None:
        self._buffer = ""
        self._min_words = min_clause_words
        self._max_chars = max_clause_chars

    def push(self, delta: str) -> list[str]:
        self._buffer += delta
        out: list[str] = []
        while True:
            cut = self._find_cut()
            if cut is None:
                break
            clause, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:].lstrip()
            if clause:
                out.append(clause)
        return out

    def flush(self) -> list[str]:
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []

    def _find_cut(self) -> int | None:
        sentence = _SENTENCE_END.search(self._buffer)
        if sentence is not None:
            return sentence.end()
        for match in _CLAUSE_END.finditer(self._buffer):
            if len(self._buffer[: match.start()].split()) >= self._min_words:
                return match.end()
        if len(self._buffer) > self._max_chars:
            space = self._buffer.rfind(" ", 0, self._max_chars)
            return space if space > 0 else self._max_chars
        return None


def split_text(text: str, min_clause_words: int = 3) -> list[str]:
    """All clauses of a complete text (a cached answer, a greeting)."""
    splitter = ClauseSplitter(min_clause_words)
    return splitter.push(text + " ") + splitter.flush()
