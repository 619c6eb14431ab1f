"""Pure proto <-> domain conversions of the context service's gRPC surface.

Conventions the wire format adds to the domain:

- a source is stored as ``<knowledge base>/<source id>`` (``Document.knowledge_base`` defaults
  to ``default``), so ``RetrievalOptions.knowledge_bases`` becomes a filter inside the search;
- ``kb_version`` on the wire is the tenant's knowledge-base version number as a decimal string;
- the query embedding is reported in ``SEMANTIC_SEARCH`` (or in ``CACHE_LOOKUP`` on a hit);
- ``Document.metadata["entity_field"]`` names the key column of CSV/JSON tickets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import ValidationError

from trunkline.agents import RankMode, Retrieval
from trunkline.context.core.cache_policy import AnswerFacts
from trunkline.context.core.filters import check_ident
from trunkline.context.core.setalgebra import SetOp, SetOpName
from trunkline.context.core.types import (
    FOREVER,
    CacheEntry,
    ChunkMeta,
    ContextItem,
    EntrySelector,
    LiveRecord,
    Resolution,
    StageReport,
)
from trunkline.context.errors import InvalidRequestError
from trunkline.context.ingest.ingestor import Document
from trunkline.context.ingest.parsers import KINDS, kind_of
from trunkline.proto.common.v1 import error_pb2, knowledge_pb2
from trunkline.proto.context.v1 import context_pb2
from trunkline.proto.events.v1 import events_pb2

DEFAULT_KB = "default"
DEFAULT_ROLE = "caller"

_RANK = {
    context_pb2.RANK_MODE_VECTOR: RankMode.NONE,
    context_pb2.RANK_MODE_CROSS_ENCODER: RankMode.CROSS_ENCODER,
    context_pb2.RANK_MODE_EMBEDDED: RankMode.EMBEDDED,
}
_SET_OP: dict[int, SetOpName] = {
    context_pb2.SET_OPERATOR_UNION: "union",
    context_pb2.SET_OPERATOR_INTERSECTION: "intersection",
    context_pb2.SET_OPERATOR_DIFFERENCE: "difference",
}
_MIME = {
    "application/pdf": "pdf",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "text/plain": "text",
    "text/csv": "csv",
    "application/json": "json",
}
_STAGE = context_pb2.ResolveStage
_FIVE = (
    ("filter", _STAGE.RESOLVE_STAGE_METADATA_FILTER),
    ("search", _STAGE.RESOLVE_STAGE_SEMANTIC_SEARCH),
    ("dedup", _STAGE.RESOLVE_STAGE_DEDUPLICATE),
    ("rank", _STAGE.RESOLVE_STAGE_RANK),
    ("set_algebra", _STAGE.RESOLVE_STAGE_SET_ALGEBRA),
)


def role_of(context: Any) -> str:
    """The caller role of a ``CallContext`` (``caller`` when unset)."""
    return str(context.caller.role) or DEFAULT_ROLE


def source_key(knowledge_base: str, source_id: str) -> str:
    kb = knowledge_base or DEFAULT_KB
    try:
        check_ident("knowledge base", kb)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from exc
    if not source_id or len(source_id) > 400:
        raise InvalidRequestError("source_id must be 1..400 characters")
    return f"{kb}/{source_id}"


def split_source(source: str) -> tuple[str, str]:
    kb, sep, rest = source.partition("/")
    return (kb, rest) if sep else ("", source)


def kb_version_text(version: int) -> str:
    return str(version)


def parse_kb_version(text: str) -> int:
    if not text.strip().isdigit():
        raise InvalidRequestError(
            f"kb_version {text!r} is not a knowledge-base version: pass ResolveResponse.kb_version"
        )
    return int(text)


def retrieval_for(base: Retrieval, options: Any) -> Retrieval:
    """``base`` (the agent's retrieval section) with the request's non-zero options applied."""
    update: dict[str, Any] = {}
    if options.top_k:
        update["top_k"] = options.top_k
    if options.token_budget:
        update["token_budget"] = options.token_budget
    if options.rank_mode:
        if options.rank_mode not in _RANK:
            raise InvalidRequestError(f"unknown rank_mode {options.rank_mode}")
        update["rank_mode"] = _RANK[options.rank_mode]
    if not update:
        return base
    try:
        return Retrieval.model_validate({**base.model_dump(), **update})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidRequestError(f"invalid retrieval options: {problems}") from exc


def set_ops_of(options: Any) -> tuple[SetOp, ...] | None:
    """The request's set operations, or None to use the agent's."""
    if not options.set_operations:
        return None
    ops = []
    for i, op in enumerate(options.set_operations):
        if op.operator not in _SET_OP:
            raise InvalidRequestError(f"options.set_operations[{i}].operator is unspecified")
        if not op.source:
            raise InvalidRequestError(f"options.set_operations[{i}].source is empty")
        ops.append(SetOp(op=_SET_OP[op.operator], source=op.source))
    return tuple(ops)


def live_records_of(records: Iterable[Any], options: Any) -> dict[str, list[LiveRecord]]:
    """Live records by source, keyed by the ``match_key`` their set operation names (or id)."""
    match = {op.source: op.match_key for op in options.set_operations}
    out: dict[str, list[LiveRecord]] = {}
    for record in records:
        if not record.source or not record.id:
            raise InvalidRequestError("every live record needs a source and an id")
        key_name = match.get(record.source, "")
        key = record.keys.get(key_name, record.id) if key_name else record.id
        out.setdefault(record.source, []).append(
            LiveRecord(source=record.source, key=key, text=record.text)
        )
    return out


def state_of(entities: Iterable[Any]) -> dict[str, str]:
    return {e.key: e.value for e in entities if e.key}


def citation(item: ContextItem, kb_version: int) -> knowledge_pb2.Citation:
    if item.live:
        return knowledge_pb2.Citation(id=item.citation, source_id=item.source, score=item.score)
    kb, source_id = split_source(item.source)
    return knowledge_pb2.Citation(
        id=item.citation,
        knowledge_base=kb,
        source_id=source_id,
        score=item.score,
        kb_version=kb_version_text(kb_version),
    )


def cached_citation(cid: str) -> knowledge_pb2.Citation:
    kb, source_id = split_source(cid.split("#", 1)[0])
    return knowledge_pb2.Citation(id=cid, knowledge_base=kb, source_id=source_id)


def duration(ms: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(ms * 1e6))
    return d


def stage_reports(stages: Sequence[StageReport], cached: bool) -> list[context_pb2.StageReport]:
    """The resolver's steps as the proto's six stages, in execution order.

    The query embedding is part of SEMANTIC_SEARCH, or of CACHE_LOOKUP on a hit (where the five
    stages are reported ``skipped``). A cache that was not consulted is reported ``skipped``.
    """
    by = {s.name: s for s in stages}
    embed = by.get("embed")
    embed_ms = embed.duration_ms if embed else 0.0
    cache = by.get("cache")
    out = []
    if cache is None:
        out.append(
            context_pb2.StageReport(
                stage=_STAGE.RESOLVE_STAGE_CACHE_LOOKUP,
                duration=duration(0),
                skipped=True,
                detail="not consulted (no agent, skip_cache, or cache disabled)",
            )
        )
    else:
        out.append(
            context_pb2.StageReport(
                stage=_STAGE.RESOLVE_STAGE_CACHE_LOOKUP,
                duration=duration(cache.duration_ms + (embed_ms if cached else 0.0)),
                count_in=cache.count_in,
                count_out=cache.count_out,
                detail=cache.detail + (f"; embed {embed_ms:.1f} ms" if cached else ""),
            )
        )
    for name, stage in _FIVE:
        report = by.get(name)
        if cached or report is None:
            out.append(
                context_pb2.StageReport(
                    stage=stage, duration=duration(0), skipped=True, detail="cache hit"
                )
            )
            continue
        ms = report.duration_ms
        detail = report.detail
        if name == "search":
            ms += embed_ms
            detail = f"embed {embed_ms:.1f} ms, ANN {report.duration_ms:.1f} ms"
        out.append(
            context_pb2.StageReport(
                stage=stage,
                duration=duration(ms),
                count_in=report.count_in,
                count_out=report.count_out,
                detail=detail,
            )
        )
    return out


def resolve_response(resolution: Resolution, total_ms: float) -> context_pb2.ResolveResponse:
    response = context_pb2.ResolveResponse(
        retrieval_confidence=resolution.confidence,
        stages=stage_reports(resolution.stages, resolution.cached is not None),
        total_time=duration(total_ms),
        kb_version=kb_version_text(resolution.kb_version),
        intent=resolution.intent,
        intent_score=resolution.intent_score,
    )
    if resolution.cached is not None:
        hit = resolution.cached
        response.retrieval_confidence = hit.similarity
        response.cache_hit.CopyFrom(
            context_pb2.CacheHit(
                answer=hit.answer,
                similarity=hit.similarity,
                cached_query=hit.query,
                entry_id=hit.entry_id,
                citations=[cached_citation(c) for c in hit.citations],
            )
        )
    elif resolution.block is not None:
        block = resolution.block
        response.context_block.CopyFrom(
            knowledge_pb2.ContextBlock(
                text=block.text,
                citations=[citation(i, resolution.kb_version) for i in block.items],
                token_count=block.tokens,
            )
        )
    return response


def epoch(ts: Any, default: int) -> int:
    """Seconds of a ``Timestamp`` field, ``default`` when it is unset."""
    if not ts.seconds and not ts.nanos:
        return default
    return int(ts.seconds)


def document_of(tenant: str, doc: Any, data: bytes) -> Document:
    """The ingestor's :class:`Document` for a proto ``Document`` and its bytes."""
    source = source_key(doc.knowledge_base, doc.source_id)
    if doc.mime_type:
        kind = _MIME.get(doc.mime_type.split(";")[0].strip().lower())
        if kind is None:
            raise InvalidRequestError(
                f"{source}: unsupported mime_type {doc.mime_type!r}; supported: {sorted(_MIME)}"
            )
    else:
        kind = kind_of(doc.source_id)
    assert kind in KINDS
    roles = tuple(doc.allowed_roles) or ("*",)
    meta = ChunkMeta(
        tenant=tenant,
        roles=roles,
        valid_from=epoch(doc.valid_from, 0),
        valid_to=epoch(doc.valid_to, FOREVER),
    )
    return Document(
        source, meta, data=data, kind=kind, entity_field=doc.metadata.get("entity_field", "")
    )


def error_detail(message: str, reason: str = "INVALID_ARGUMENT") -> error_pb2.ErrorDetail:
    return error_pb2.ErrorDetail(reason=reason, message=message, domain="context.trunkline")


def reply_source(value: int) -> str:
    """``AnswerFacts.reply_source`` as the store rule names it ("llm", "small_talk" ...)."""
    try:
        name = events_pb2.ReplySource.Name(value)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidRequestError(f"facts.reply_source: unknown value {value}") from exc
    return name.removeprefix("REPLY_SOURCE_").lower()


def answer_facts(request: Any) -> AnswerFacts:
    """What the turn did, from a ``StoreAnswerRequest`` (``policy.uses_live_data`` counts too)."""
    facts = request.facts
    return AnswerFacts(
        heard=request.answer,
        generated=facts.generated,
        interrupted=facts.interrupted,
        grounded=facts.grounded,
        reply_source=reply_source(facts.reply_source),
        human_written=facts.human_written,
        tool_calls=facts.tool_calls,
        uses_live_data=facts.uses_live_data or request.policy.uses_live_data,
        retrieval_confidence=facts.retrieval_confidence,
        shadow=request.context.shadow,
    )


_ENTRY_ID = re.compile(r"[0-9a-f]{1,64}")


def entry_selector(request: Any) -> EntrySelector:
    """The entries a ``ListCacheEntries`` or ``DeleteCacheEntries`` request selects."""
    for value in request.entry_ids:
        if not _ENTRY_ID.fullmatch(value):
            raise InvalidRequestError(f"entry id {value!r} is not a cache entry id (hex)")
    try:
        if request.role:
            check_ident("role", request.role)
        agent = request.agent.strip().lower()
        if agent:
            check_ident("agent", agent)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from exc
    return EntrySelector(agent=agent, role=request.role, entry_ids=tuple(request.entry_ids))


def page_offset(token: str) -> int:
    if not token:
        return 0
    if token.isdigit():
        return int(token)
    raise InvalidRequestError(f"invalid page_token {token!r}")


def cache_entry(entry: CacheEntry) -> context_pb2.CacheEntry:
    return context_pb2.CacheEntry(
        entry_id=entry.entry_id,
        agent=entry.agent,
        role=entry.role,
        kb_version=kb_version_text(entry.kb_version),
        query=entry.query,
        answer=entry.answer,
        citation_ids=list(entry.citations),
        stored_at=Timestamp(seconds=entry.stored_at),
        expires_at=Timestamp(seconds=min(entry.expires_at, 253402300799)),
    )
