"""A stream's vocabulary: checked once from the request, and turned into Whisper's prompt."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from trunkline.stt.core.types import Vocabulary

MAX_PHRASES = 200
MAX_PHRASE_CHARS = 100
MAX_BOOST = 100.0


def vocabulary_of(phrases: Iterable[str], boost: float = 0.0) -> Vocabulary:
    """The request's phrases, stripped, empty ones and repeats (any case) dropped, order kept;
    ``ValueError`` naming the problem for too many, too long or a boost out of range."""
    if not 0.0 <= boost <= MAX_BOOST:
        raise ValueError(f"phrase_boost {boost:g} is outside 0 .. {MAX_BOOST:g}")
    kept: list[str] = []
    seen: set[str] = set()
    for raw in phrases:
        phrase = " ".join(raw.split())
        if len(phrase) > MAX_PHRASE_CHARS:
            raise ValueError(
                f"phrase_hints entry {phrase[:40]!r}... is {len(phrase)} characters; "
                f"at most {MAX_PHRASE_CHARS}"
            )
        if phrase and phrase.lower() not in seen:
            seen.add(phrase.lower())
            kept.append(phrase)
    if len(kept) > MAX_PHRASES:
        raise ValueError(f"{len(kept)} phrase_hints; at most {MAX_PHRASES}")
    return Vocabulary(tuple(kept), boost)


def prompt_text(
    vocabulary: Vocabulary, count_tokens: Callable[[str], int], max_tokens: int, after: str = ""
) -> str:
    """The vocabulary as Whisper's prompt ("Acme Dental, Saturday, teeth whitening."), then
    ``after`` (words the caller's turn follows, e.g. the agent's "How can I help you today?"):
    as many phrases, first ones first, as fit in ``max_tokens`` of ``count_tokens`` with it;
    no phrase is cut. Empty when not even the first phrase fits."""
    if max_tokens <= 0:
        return ""
    tail = f" {after.strip()}" if after.strip() else ""
    text = ""
    for phrase in vocabulary.phrases:
        candidate = f"{text}, {phrase}" if text else phrase
        if count_tokens(" " + candidate + "." + tail) > max_tokens:
            break
        text = candidate
    return text + "." + tail if text else ""
