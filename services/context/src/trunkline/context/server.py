# ruff: noqa: N802  (servicer methods carry the proto RPC names)
"""gRPC surface of context: ``trunkline.context.v1.ContextService`` (proto <-> domain only).

Statuses: an unknown tenant (nothing ingested for it) is NOT_FOUND, a caller role with access
to nothing of the tenant is PERMISSION_DENIED, bad input is INVALID_ARGUMENT, a source that is
not there is NOT_FOUND, a failed backend (model, Milvus, scoring endpoint) is UNAVAILABLE and
a service still loading its model or opening Milvus is UNAVAILABLE too; each with a message.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import grpc
from opentelemetry import trace

from trunkline.context import convert
from trunkline.context.agents import cache_agent_key
from trunkline.context.core.types import Caller
from trunkline.context.errors import (
    AccessDeniedError,
    BackendError,
    ContextError,
    InvalidRequestError,
    UnknownTenantError,
)
from trunkline.context.ingest.ingestor import Document, IngestResult
from trunkline.context.service import Backends
from trunkline.proto.context.v1 import context_pb2, context_pb2_grpc
from trunkline.runtime import service_name

Context = grpc.aio.ServicerContext[Any, Any]
Clock = Callable[[], float]

_STATUS: tuple[tuple[type[ContextError], grpc.StatusCode], ...] = (
    (UnknownTenantError, grpc.StatusCode.NOT_FOUND),
    (AccessDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (BackendError, grpc.StatusCode.UNAVAILABLE),
)


def status_of(exc: ContextError) -> grpc.StatusCode:
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


class ContextService(context_pb2_grpc.ContextServiceServicer):
    """Context arithmetic, knowledge ingestion and the semantic cache.

    ``backends`` returns the opened :class:`Backends`, or None while they are still loading.
    ``clock`` gives epoch seconds (validity windows, cache TTL).
    """

    def __init__(self, backends: Callable[[], Backends | None], clock: Clock = time.time) -> None:
        self._backends = backends
        self._clock = clock

    async def ready(self) -> bool:
        return self._backends() is not None

    async def Resolve(
        self, request: context_pb2.ResolveRequest, context: Context
    ) -> context_pb2.ResolveResponse:
        start = time.perf_counter()
        async with self._errors(context) as b:
            ctx = request.context
            agent = ctx.agent.name
            base = b.agents.retrieval(agent)
            retrieval = convert.retrieval_for(base, request.options)
            span = trace.get_current_span()
            span.set_attribute("tenant", ctx.tenant_id)
            span.set_attribute("agent.known", b.agents.known(agent))
            resolution = await b.resolver.resolve(
                request.query,
                Caller(ctx.tenant_id, convert.role_of(ctx), int(self._clock())),
                retrieval,
                agent=cache_agent_key(agent, ctx.agent.version),
                state=convert.state_of(request.entities),
                sources=b.sources(base),
                use_cache=not request.options.skip_cache,
                knowledge_bases=tuple(request.options.knowledge_bases),
                live=convert.live_records_of(request.live_records, request.options),
                set_ops=convert.set_ops_of(request.options),
                cache_threshold=request.options.cache_similarity_threshold or None,
                prefer_first=tuple(request.prefer_first),
                intents=b.agents.intents(agent),
            )
            span.set_attribute("cache_hit", resolution.cached is not None)
            span.set_attribute("intent", resolution.intent)
            span.set_attribute("intent.score", round(resolution.intent_score, 3))
            span.set_attribute("confidence", resolution.confidence)
            return convert.resolve_response(resolution, (time.perf_counter() - start) * 1000)

    async def StoreAnswer(
        self, request: context_pb2.StoreAnswerRequest, context: Context
    ) -> context_pb2.StoreAnswerResponse:
        async with self._errors(context) as b:
            ctx, policy = request.context, request.policy
            agent = cache_agent_key(ctx.agent.name, ctx.agent.version)
            if not agent:
                raise InvalidRequestError("context.agent.name is required to cache an answer")
            if not request.answer.strip():
                raise InvalidRequestError("answer is empty")
            ttl = policy.ttl.seconds if policy.HasField("ttl") else None
            if ttl is not None and ttl <= 0:
                raise InvalidRequestError("policy.ttl must be positive")
            result = await b.resolver.store_answer(
                request.query,
                convert.answer_facts(request),
                [c.id for c in request.citations if c.id],
                tenant=ctx.tenant_id,
                role=convert.role_of(ctx),
                agent=agent,
                kb_version=convert.parse_kb_version(request.kb_version),
                now=int(self._clock()),
                min_confidence=b.agents.cache_line(ctx.agent.name),
                ttl_s=ttl,
                overwrite=policy.overwrite,
            )
            span = trace.get_current_span()
            span.set_attribute("cache.stored", result.stored)
            if result.reason:
                span.set_attribute("cache.reason", result.reason)
            return context_pb2.StoreAnswerResponse(
                stored=result.stored, entry_id=result.entry_id, reason=result.reason
            )

    async def ListCacheEntries(
        self, request: context_pb2.ListCacheEntriesRequest, context: Context
    ) -> context_pb2.ListCacheEntriesResponse:
        async with self._errors(context) as b:
            tenant = request.context.tenant_id
            selector = convert.entry_selector(request)
            found = await b.resolver.cache_entries(tenant, selector)
            size = request.page_size or 100
            offset = convert.page_offset(request.page_token)
            response = context_pb2.ListCacheEntriesResponse(
                next_page_token=str(offset + size) if offset + size < len(found) else ""
            )
            response.entries.extend(convert.cache_entry(e) for e in found[offset : offset + size])
            return response

    async def DeleteCacheEntries(
        self, request: context_pb2.DeleteCacheEntriesRequest, context: Context
    ) -> context_pb2.DeleteCacheEntriesResponse:
        async with self._errors(context) as b:
            tenant = request.context.tenant_id
            deleted = await b.resolver.delete_cache_entries(tenant, convert.entry_selector(request))
            return context_pb2.DeleteCacheEntriesResponse(deleted=deleted)

    async def Ingest(
        self, request_iterator: AsyncIterator[context_pb2.IngestRequest], context: Context
    ) -> context_pb2.IngestResponse:
        start = time.perf_counter()
        async with self._errors(context) as b:
            response = context_pb2.IngestResponse()
            batch = _Batch(b, response)
            tenant = ""
            current: Any = None
            data = bytearray()
            async for message in request_iterator:
                tenant = tenant or message.context.tenant_id
                item = message.WhichOneof("item")
                if item == "document":
                    if current is not None:
                        await batch.add(tenant, current, bytes(data))
                    current, data = message.document, bytearray()
                elif item == "data":
                    if current is None:
                        raise InvalidRequestError("data before any document in the Ingest stream")
                    data += message.data
                    if len(data) > b.settings.max_document_bytes:
                        raise InvalidRequestError(
                            f"document {current.source_id!r} is larger than "
                            f"{b.settings.max_document_bytes} bytes"
                        )
            if current is not None:
                await batch.add(tenant, current, bytes(data))
            await batch.flush()
            response.documents = len(response.sources)
            response.total_time.CopyFrom(convert.duration((time.perf_counter() - start) * 1000))
            return response

    async def ListSources(
        self, request: context_pb2.ListSourcesRequest, context: Context
    ) -> context_pb2.ListSourcesResponse:
        async with self._errors(context) as b:
            tenant = request.context.tenant_id
            if await b.ingestor.store.tenant(tenant) is None:
                raise UnknownTenantError(tenant)
            prefix = f"{request.knowledge_base}/" if request.knowledge_base else ""
            found = [s for s in await b.ingestor.sources(tenant) if s.source.startswith(prefix)]
            size = request.page_size or 100
            offset = convert.page_offset(request.page_token)
            page = found[offset : offset + size]
            response = context_pb2.ListSourcesResponse(
                next_page_token=str(offset + size) if offset + size < len(found) else ""
            )
            for info in page:
                kb, source_id = convert.split_source(info.source)
                response.sources.add(
                    document=context_pb2.Document(
                        knowledge_base=kb,
                        source_id=source_id,
                        kb_version=convert.kb_version_text(info.kb_version),
                    ),
                    chunk_count=info.chunks,
                    content_hash=info.doc_hash,
                    flagged_chunks=info.flagged,
                )
            return response

    async def DeleteSource(
        self, request: context_pb2.DeleteSourceRequest, context: Context
    ) -> context_pb2.DeleteSourceResponse:
        async with self._errors(context) as b:
            tenant = request.context.tenant_id
            source = convert.source_key(request.knowledge_base, request.source_id)
            result = await b.ingestor.delete(tenant, source)
            if result.status != "deleted":
                await context.abort(
                    grpc.StatusCode.NOT_FOUND,
                    f"no source {request.source_id!r} in knowledge base "
                    f"{request.knowledge_base or convert.DEFAULT_KB!r} of tenant {tenant!r}",
                )
            return context_pb2.DeleteSourceResponse(
                chunks_removed=result.chunks_deleted,
                cache_entries_invalidated=result.cache_invalidated,
            )

    @asynccontextmanager
    async def _errors(self, context: Context) -> AsyncIterator[Backends]:
        """The backends, with domain errors turned into statuses with their message."""
        backends = self._backends()
        if backends is None:
            await _abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "context service is starting (loading the embedder, opening Milvus)",
            )
        try:
            yield backends
        except ContextError as exc:
            await _abort(context, status_of(exc), str(exc))


async def _abort(context: Context, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


class _Batch:
    """Documents of one Ingest, written ``ingest_batch_documents`` at a time (one flush each)."""

    def __init__(self, backends: Backends, response: context_pb2.IngestResponse) -> None:
        self._b = backends
        self._response = response
        self._docs: list[Document | tuple[str, str, InvalidRequestError]] = []

    async def add(self, tenant: str, doc: Any, data: bytes) -> None:
        try:
            self._docs.append(convert.document_of(tenant, doc, data))
        except InvalidRequestError as exc:
            self._docs.append((doc.knowledge_base or convert.DEFAULT_KB, doc.source_id, exc))
        if len(self._docs) >= self._b.settings.ingest_batch_documents:
            await self.flush()

    async def flush(self) -> None:
        docs = [d for d in self._docs if isinstance(d, Document)]
        outcome = await self._b.ingestor.ingest_many(docs) if docs else None
        results = iter(outcome.results if outcome else [])
        r = self._response
        for entry in self._docs:
            if isinstance(entry, Document):
                self._summarize(next(results))
            else:
                kb, source_id, exc = entry
                r.sources.add(
                    knowledge_base=kb, source_id=source_id, error=convert.error_detail(str(exc))
                )
        if outcome is not None:
            r.cache_entries_invalidated += outcome.cache_invalidated
        self._docs = []

    def _summarize(self, result: IngestResult) -> None:
        r = self._response
        kb, source_id = convert.split_source(result.source)
        summary = r.sources.add(knowledge_base=kb, source_id=source_id)
        if result.error is not None:
            summary.error.CopyFrom(
                convert.error_detail(str(result.error), status_of(result.error).name)
            )
            return
        summary.chunks_removed = result.chunks_deleted
        r.chunks_removed += result.chunks_deleted
        summary.chunks_unchanged = result.chunks_unchanged
        r.chunks_unchanged += result.chunks_unchanged
        summary.chunks_added = result.chunks_written
        r.chunks_added += result.chunks_written


CONTEXT_SERVICE = service_name(ContextService)


def register(server: grpc.aio.Server, servicer: ContextService) -> None:
    context_pb2_grpc.add_ContextServiceServicer_to_server(servicer, server)
