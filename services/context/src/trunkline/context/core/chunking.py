"""Structure-aware chunking with overlap.

A document arrives as sections (a heading path and its body). Paragraphs are packed into chunks
of at most ``max_chars``; a paragraph too long is split at sentence ends, a sentence too long at
word boundaries. Consecutive chunks of one section share up to ``overlap_chars`` of trailing
sentences, so a fact cut by a boundary is still whole in one chunk. Chunks never cross sections.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from trunkline.context.core.types import ChunkDraft

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_BLANK_LINES = re.compile(r"\n\s*\n")
_SPACES = re.compile(r"[ \t\r\f\v]+")


@dataclass(frozen=True, slots=True)
class Section:
    """A titled part of a document; ``entity`` keys it for set algebra (may be empty)."""

    title: str
    body: str
    entity: str = ""


@dataclass(frozen=True, slots=True)
class ChunkingPolicy:
    max_chars: int = 800
    overlap_chars: int = 160

    def __post_init__(self) -> None:
        if self.max_chars < 50:
            raise ValueError("max_chars must be at least 50")
        if not 0 <= self.overlap_chars < self.max_chars // 2:
            raise ValueError("overlap_chars must be in [0, max_chars / 2)")


def chunk_sections(sections: Iterable[Section], policy: ChunkingPolicy) -> list[ChunkDraft]:
    """Cut every section into chunks; ordinals run across the whole document."""
    drafts: list[ChunkDraft] = []
    for section in sections:
        for text in _chunk_body(section.body, policy):
            drafts.append(
                ChunkDraft(
                    text=text, section=section.title, ordinal=len(drafts), entity=section.entity
                )
            )
    return drafts


def _chunk_body(body: str, policy: ChunkingPolicy) -> list[str]:
    pieces: list[str] = []
    for paragraph in _BLANK_LINES.split(body):
        clean = _SPACES.sub(" ", paragraph).strip()
        if clean:
            pieces.extend(_split_long(clean, policy.max_chars))
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for piece in pieces:
        extra = len(piece) + (1 if current else 0)
        if current and size + extra > policy.max_chars:
            chunks.append(" ".join(current))
            current = _overlap_tail(
                current, policy.overlap_chars, policy.max_chars - len(piece) - 1
            )
            size = sum(len(p) + 1 for p in current) - 1 if current else 0
            extra = len(piece) + (1 if current else 0)
        current.append(piece)
        size += extra
    if current:
        chunks.append(" ".join(current))
    return chunks


def _overlap_tail(pieces: list[str], overlap: int, room: int) -> list[str]:
    """The last sentences of ``pieces`` that fit in ``min(overlap, room)`` characters."""
    limit = min(overlap, room)
    sentences = [s for piece in pieces for s in _SENTENCE_END.split(piece)]
    tail: list[str] = []
    size = 0
    for sentence in reversed(sentences):
        if size + len(sentence) + 1 > limit:
            break
        tail.insert(0, sentence)
        size += len(sentence) + 1
    return tail


def _split_long(paragraph: str, max_chars: int) -> list[str]:
    if len(paragraph) <= max_chars:
        return [paragraph]
    out: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        if len(sentence) <= max_chars:
            out.append(sentence)
            continue
        line: list[str] = []
        size = 0
        for whole in sentence.split(" "):
            word = whole[:max_chars]
            if line and size + 1 + len(word) > max_chars:
                out.append(" ".join(line))
                line, size = [], 0
            size += len(word) + (1 if line else 0)
            line.append(word)
        if line:
            out.append(" ".join(line))
    return out
