"""Stage 5, set algebra: the ranked chunks combined with live records into one bounded block.

Items are keyed by entity. The operations run in order over the current set:

- ``union``: add every live record of the source (records already present are not repeated);
- ``intersection``: keep only items whose entity has a record in the source, and add those
  records (chunks without an entity are dropped: they cannot be matched);
- ``difference``: drop items whose entity has a record in the source.

The result is cut to a token budget in order, each item carrying its citation label ``[n]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from trunkline.context.core.types import ContextBlock, ContextItem, Hit, LiveRecord

SetOpName = Literal["union", "intersection", "difference"]


@dataclass(frozen=True, slots=True)
class SetOp:
    op: SetOpName
    source: str


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate (about 4 characters per token for English)."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def chunk_items(ranked: Sequence[tuple[Hit, float]]) -> list[ContextItem]:
    return [
        ContextItem(
            text=hit.chunk.text,
            citation=f"{hit.chunk.source}#{hit.chunk.section or hit.chunk.chunk_id}",
            source=hit.chunk.source,
            entity=hit.chunk.entity,
            score=score,
        )
        for hit, score in ranked
    ]


def record_item(record: LiveRecord) -> ContextItem:
    return ContextItem(
        text=record.text,
        citation=f"{record.source}:{record.key}",
        source=record.source,
        entity=record.key,
        score=1.0,
        live=True,
    )


def combine(
    items: Sequence[ContextItem],
    records: Mapping[str, Sequence[LiveRecord]],
    ops: Sequence[SetOp],
) -> list[ContextItem]:
    """Apply ``ops`` in order; ``records`` maps a source name to what it returned."""
    current = list(items)
    for op in ops:
        if op.source not in records:
            raise KeyError(f"set operation on unknown data source {op.source!r}")
        source_records = records[op.source]
        keys = {r.key for r in source_records}
        present = {(i.source, i.entity) for i in current if i.live}
        if op.op == "union":
            current += [record_item(r) for r in source_records if (r.source, r.key) not in present]
        elif op.op == "intersection":
            current = [i for i in current if i.live or (i.entity and i.entity in keys)]
            matched = {i.entity for i in current if not i.live}
            current += [
                record_item(r)
                for r in source_records
                if r.key in matched and (r.source, r.key) not in present
            ]
        else:
            current = [i for i in current if i.live or i.entity not in keys]
    return current


def prefer_first(items: Sequence[ContextItem], first: Sequence[str]) -> list[ContextItem]:
    """``items`` with those whose citation is in ``first`` ahead, in ``first``'s order; the
    others keep their order after them."""
    rank = {citation: i for i, citation in enumerate(first)}
    return sorted(items, key=lambda item: rank.get(item.citation, len(rank)))


def pack(
    items: Sequence[ContextItem],
    budget: int,
    count: Callable[[str], int] = estimate_tokens,
) -> ContextBlock:
    """Number the items ``[1]..[n]`` and keep them in order while they fit in ``budget`` tokens.
    The text carries only the numbers (item n's citation is ``items[n - 1].citation``): on a
    voice turn every prompt token costs time before the first word, and source paths are many.

    An item that does not fit whole is cut at a word boundary if at least 16 tokens remain;
    then packing stops.
    """
    lines: list[str] = []
    kept: list[ContextItem] = []
    used = 0
    truncated = False
    for item in items:
        label = f"[{len(kept) + 1}] "
        line = f"{label}{item.text}"
        cost = count(line) + (1 if lines else 0)
        if used + cost <= budget:
            lines.append(line)
            kept.append(item)
            used += cost
            continue
        truncated = True
        room = budget - used - 1 - count(f"{label}...")
        if room >= 16:
            words = item.text.split()
            cut: list[str] = []
            for word in words:
                if count(" ".join([*cut, word])) > room:
                    break
                cut.append(word)
            if cut:
                line = f"{label}{' '.join(cut)}..."
                lines.append(line)
                kept.append(item)
                used += count(line) + (1 if len(lines) > 1 else 0)
        break
    return ContextBlock(text="\n".join(lines), items=tuple(kept), tokens=used, truncated=truncated)
