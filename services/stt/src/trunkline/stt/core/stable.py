"""Incremental recognition: a stable prefix confirmed by overlap (LocalAgreement-2).

Each read of a growing utterance decodes only the audio after the settled point
(``StablePrefix.until_s``). The words that two successive reads of that audio agree on, in order
from its start, are confirmed and settled, with the audio under them; the next read (and the
final) decodes only what follows, conditioned on the settled text. So a long utterance read ahead
while the caller speaks costs at its end about what its last second or two costs.

A word is settled only when a later word follows it, that next word starts at least ``guard_s``
before the end of the audio read (a word still being spoken is never cut), and the audio between
them holds a real pause (the caller's ``gap``: the cut goes there, never inside a word). The
audio after the cut is decoded on its own, not conditioned on the settled text (tiny.en,
prompted with it, dropped words: "anything on Thursday." read "anything"). Pure: times in
seconds from the utterance's start, no audio here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_MAX_OVERLAP = 4  # words a tail may repeat from the end of the settled text


@dataclass(frozen=True, slots=True)
class Word:
    """A decoded word with its leading space as the tokenizer wrote it (" crown", " $150")."""

    text: str
    start_s: float
    end_s: float


def norm(word: str) -> str:
    """The word as compared: lowercase letters and digits ("Crown," and "crown" agree)."""
    return "".join(_WORD.findall(word.lower()))


def attach_punctuation(words: list[Word]) -> list[Word]:
    """Punctuation the tokenizer split off (",", ".") joins the word before it."""
    out: list[Word] = []
    for word in words:
        if out and not norm(word.text):
            last = out[-1]
            out[-1] = Word(last.text + word.text.strip(), last.start_s, max(last.end_s, word.end_s))
        else:
            out.append(word)
    return out


def join_words(words: list[Word] | list[str]) -> str:
    """Words (punctuation attached) as one text, a space between each two."""
    texts = (w.text if isinstance(w, Word) else w for w in words)
    return " ".join(t.strip() for t in texts if t.strip())


def drop_overlap(settled: list[str], tail: list[str]) -> list[str]:
    """``tail`` without the words it repeats from the end of ``settled`` (the tail's audio
    starts in the gap after the last settled word, and Whisper sometimes hears that word again:
    "... last night" + "night and I would" -> "and I would")."""
    settled_n = [norm(w) for w in settled]
    tail_n = [norm(w) for w in tail]
    for k in range(min(_MAX_OVERLAP, len(settled_n), len(tail_n)), 0, -1):
        if settled_n[-k:] == tail_n[:k] and all(tail_n[:k]):
            return tail[k:]
    return tail


@dataclass(slots=True)
class StablePrefix:
    """The settled words of one utterance and the audio they cover."""

    guard_s: float = 0.5
    words: list[Word] = field(default_factory=list)
    until_s: float = 0.0  # audio before this is settled: decode from here
    logprob_sum: float = 0.0  # average log probability x words, over the settled words
    _previous: list[Word] = field(default_factory=list)  # last read of the audio after until_s
    _cuts: list[tuple[int, float]] = field(default_factory=list)  # (words before, cut) settled

    def decode_from(self, heard_s: float, min_tail_s: float) -> tuple[int, float]:
        """Where the next decode starts: (settled words kept before it, cut) for the latest cut
        that leaves at least ``min_tail_s`` of audio to decode (tiny.en hears a short fragment
        badly: "on Thursday." alone read "18th, 1 Thursday."); (0, 0.0) is the whole."""
        for count, cut in reversed(self._cuts):
            if heard_s - cut >= min_tail_s:
                return count, cut
        return 0, 0.0

    @property
    def text(self) -> str:
        return join_words(self.words)

    def avg_logprob(self) -> float | None:
        return self.logprob_sum / len(self.words) if self.words else None

    def read(
        self,
        hypothesis: list[Word],
        heard_s: float,
        avg_logprob: float = 0.0,
        gap: Callable[[float], float | None] = lambda at: at,
        kept: int | None = None,
    ) -> int:
        """Take one read of the audio from ``until_s`` to ``heard_s`` (word times from the
        utterance's start); settle what it and the previous read agree on. ``gap`` places a
        cut near a word boundary in a real pause of the audio (None: no pause there, so no
        cut). ``kept``: the read started at an earlier cut, after that many settled words, and
        hears the settled words after them again first; a read that does not is not used.
        Returns how many words were settled; ``until_s`` moves to the cut."""
        words = attach_punctuation(hypothesis)
        if kept is not None and kept < len(self.words):
            again = [norm(w.text) for w in self.words[kept:]]
            heard = [norm(w.text) for w in words[: len(again)]]
            if heard != again:
                self._previous = []
                return 0
            words = words[len(again) :]
        agreed = 0
        for before, now in zip(self._previous, words, strict=False):
            if not norm(now.text) or norm(before.text) != norm(now.text):
                break
            agreed += 1
        settle = min(agreed, len(words) - 1)  # a cut needs the next word
        cut: float | None = None
        while settle > 0:
            if words[settle].start_s <= heard_s - self.guard_s:
                cut = gap(cut_between(words[settle - 1], words[settle]))
                if cut is not None and cut > self.until_s:
                    break
            settle -= 1
        if settle <= 0 or cut is None:
            self._previous = words
            return 0
        self.words.extend(words[:settle])
        self.logprob_sum += avg_logprob * settle
        self.until_s = cut
        self._cuts.append((len(self.words), cut))
        self._previous = words[settle:]
        return settle

    def tail_text(self, tail: list[str], kept: int | None = None) -> str:
        """The whole utterance: the first ``kept`` settled words (all: None) and a read of the
        audio after them."""
        settled = [w.text for w in self.words[: len(self.words) if kept is None else kept]]
        return join_words([*settled, *drop_overlap(settled, tail)])


def cut_between(before: Word, after: Word) -> float:
    """Where the settled audio ends between two words: the middle of the gap, never after the
    next word's start (alignment puts boundaries within a frame or two of the true one)."""
    return min(max((before.end_s + after.start_s) / 2, before.end_s), after.start_s)
