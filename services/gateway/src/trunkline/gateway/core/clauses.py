"""Split streamed LLM text into clauses that TTS can start on before the reply is complete."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)")
_CLAUSE_END = re.compile(r"[,;:—]+(?=\s)")
_CITATION = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")


def speakable(clause: str) -> str:
    """The clause as the caller should hear it: without the ``[n]`` citation markers a model
    copies from its context block (the turn record keeps the generated text with them)."""
    return " ".join(_CITATION.sub("", clause).split())


class ClauseSplitter:
    """Accumulates text deltas; yields a clause at each sentence end, or at a comma/semicolon once
    the pending clause has at least ``min_clause_words`` words (short pieces sound choppy).

    ``first_clause_words``: the reply's first clause is also cut after that many complete words
    when no punctuation came yet, because the caller hears nothing until it is synthesized: the
    model generates a word every ~20-30 ms on one CPU core, so a 15-word first sentence would
    hold the first audio back by a few hundred ms. None: only punctuation cuts."""

    def __init__(
        self,
        min_clause_words: int = 3,
        max_clause_chars: int = 200,
        first_clause_words: int | None = None,
    ) -> None:
        if first_clause_words is not None and first_clause_words < 1:
            raise ValueError("first_clause_words must be None or >= 1")
        self._buffer = ""
        self._min_words = min_clause_words
        self._max_chars = max_clause_chars
        self._first_words = first_clause_words
        self._emitted = 0

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
                self._emitted += 1
        return out

    def flush(self) -> list[str]:
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []

    def _find_cut(self) -> int | None:
        sentence = _SENTENCE_END.search(self._buffer)
        if self._first_words is not None and self._emitted == 0:
            # the first clause: whichever comes first, its sentence's end or its first words
            # (a complete text arrives at once, so its first sentence would otherwise be cut
            # whole: 15 words take Piper ~150-340 ms before the first audio)
            # (as when streamed: the sentence's end decides if it comes by the last word's end)
            complete = list(re.finditer(r"\S+(?=\s)", self._buffer))
            enough = len(complete) >= self._first_words
            if enough and (
                sentence is None or complete[self._first_words - 1].end() < sentence.end()
            ):
                return self._after_words(self._first_words)
        if sentence is not None:
            return sentence.end()
        for match in _CLAUSE_END.finditer(self._buffer):
            if len(self._buffer[: match.start()].split()) >= self._min_words:
                return match.end()
        if len(self._buffer) > self._max_chars:
            space = self._buffer.rfind(" ", 0, self._max_chars)
            return space if space > 0 else self._max_chars
        if self._first_words is not None and self._emitted == 0:
            return self._after_words(self._first_words)
        return None

    def _after_words(self, count: int) -> int | None:
        """Where to cut a first clause of ``count`` complete words (a space after the last one
        shows it is complete): after its last comma or semicolon if it has one ("Hi there," |
        "how can I help?"), else after the ``count``-th word."""
        words = list(re.finditer(r"\S+(?=\s)", self._buffer))
        if len(words) < count:
            return None
        end = words[count - 1].end()
        commas = [m.end() for m in _CLAUSE_END.finditer(self._buffer, 0, end + 1)]
        return commas[-1] if commas else end


def split_text(
    text: str, min_clause_words: int = 3, first_clause_words: int | None = None
) -> list[str]:
    """All clauses of a complete text (a cached answer, a greeting); ``first_clause_words``:
    the first clause ends after so many words if its sentence goes on (as a streamed reply's)."""
    splitter = ClauseSplitter(min_clause_words, first_clause_words=first_clause_words)
    return splitter.push(text + " ") + splitter.flush()
