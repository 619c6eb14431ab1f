"""Small frozen domain types shared by the stages, the backends and the server."""

from __future__ import annotations

from dataclasses import dataclass, field

FOREVER = 2**62
"""``valid_to`` of a chunk that never expires (epoch seconds)."""


@dataclass(frozen=True, slots=True)
class ChunkDraft:
    """A chunk cut from a document, before it is embedded and stored."""

    text: str
    section: str
    ordinal: int
    entity: str = ""


@dataclass(frozen=True, slots=True)
class ChunkMeta:
    """Where a chunk may be seen: owner tenant, roles (``*``: every role) and validity window."""

    tenant: str
    roles: tuple[str, ...]
    valid_from: int = 0
    valid_to: int = FOREVER


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk as it lives in the vector store (without its vector)."""

    chunk_id: str
    text: str
    source: str
    section: str
    content_hash: str
    doc_hash: str
    entity: str
    meta: ChunkMeta
    kb_version: int


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: a stored chunk and its cosine similarity to the query."""

    chunk: StoredChunk
    similarity: float


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks: tenant, caller role, and the time the validity windows are checked against."""

    tenant: str
    role: str
    now: int


@dataclass(frozen=True, slots=True)
class LiveRecord:
    """One record fetched from a live data source (CRM, billing), keyed by entity."""

    source: str
    key: str
    text: str


@dataclass(frozen=True, slots=True)
class ContextItem:
    """One entry of the final context block: a knowledge chunk or a live record."""

    text: str
    citation: str
    source: str
    entity: str
    score: float
    live: bool = False


@dataclass(frozen=True, slots=True)
class StageReport:
    """Timing and counts of one Resolve stage."""

    name: str
    duration_ms: float
    count_in: int
    count_out: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ContextBlock:
    """The bounded, token-budgeted context handed to the LLM, with its citations."""

    text: str
    items: tuple[ContextItem, ...]
    tokens: int
    truncated: bool


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """An answer stored by the semantic cache."""

    query: str
    answer: str
    citations: tuple[str, ...]
    similarity: float
    entry_id: str = ""


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A stored answer with its scope, as the cache admin commands show it."""

    entry_id: str
    agent: str
    role: str
    kb_version: int
    query: str
    answer: str
    citations: tuple[str, ...]
    stored_at: int  # epoch seconds
    expires_at: int


@dataclass(frozen=True, slots=True)
class EntrySelector:
    """Which of a tenant's stored answers: empty fields select all.

    ``agent`` is an agent name (every version of it) or a ``name.version`` cache key.
    """

    agent: str = ""
    role: str = ""
    entry_ids: tuple[str, ...] = ()

    def picks(self, entry: CacheEntry) -> bool:
        if self.entry_ids and entry.entry_id not in self.entry_ids:
            return False
        if self.role and entry.role != self.role:
            return False
        return (
            not self.agent or entry.agent == self.agent or entry.agent.startswith(f"{self.agent}.")
        )


@dataclass(frozen=True, slots=True)
class Resolution:
    """What Resolve returns: a cache hit, or a context block; always the per-stage reports."""

    block: ContextBlock | None
    cached: CachedAnswer | None
    confidence: float
    out_of_domain: bool
    kb_version: int
    cacheable: bool
    rank_mode: str
    stages: tuple[StageReport, ...] = field(default=())
    intent: str = ""  # the intent of the closest example phrase of the agent's (core.intents)
    intent_score: float = 0.0
