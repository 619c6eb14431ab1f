"""The context service over gRPC: one ``Resolve`` per turn.

A cache hit becomes ``ContextResult.cached_answer`` (the turn skips the LLM); an empty response,
or a context service that does not implement ``Resolve`` yet, is an empty context (the turn goes
on ungrounded). Each stage report becomes a child span of the ``context`` span, laid end to end
from the moment the request was sent (the reports carry durations, not start times).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import grpc
from opentelemetry import trace

from trunkline.gateway.peers.base import ContextSource, PeerEnv
from trunkline.gateway.peers.grpc_common import PeerError, call_context, ms, rpc_errors, seconds
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import CallInfo, Citation, ContextResult, StoredAnswer
from trunkline.gateway.profile import RetrievalProfile
from trunkline.proto.common.v1 import knowledge_pb2
from trunkline.proto.context.v1 import context_pb2, context_pb2_grpc
from trunkline.proto.events.v1 import events_pb2

log = logging.getLogger(__name__)

RANK_MODES = {
    "cross_encoder": context_pb2.RANK_MODE_CROSS_ENCODER,
    "embedded": context_pb2.RANK_MODE_EMBEDDED,
    "none": context_pb2.RANK_MODE_VECTOR,
    "vector": context_pb2.RANK_MODE_VECTOR,
}


def retrieval_options(retrieval: RetrievalProfile) -> context_pb2.RetrievalOptions:
    return context_pb2.RetrievalOptions(
        top_k=retrieval.top_k,
        rank_mode=RANK_MODES.get(retrieval.rank_mode, context_pb2.RANK_MODE_UNSPECIFIED),
        token_budget=retrieval.token_budget,
        knowledge_bases=list(retrieval.data_sources),
    )


def resolve_request(
    call: CallInfo,
    query: str,
    entities: Mapping[str, str],
    options: context_pb2.RetrievalOptions,
    prefer_first: tuple[str, ...] = (),
) -> context_pb2.ResolveRequest:
    return context_pb2.ResolveRequest(
        context=call_context(call),
        query=query,
        options=options,
        entities=[context_pb2.Entity(key=k, value=v) for k, v in sorted(entities.items())],
        prefer_first=list(prefer_first),
    )


class GrpcContext(ContextSource):
    def __init__(
        self,
        env: PeerEnv,
        channel: grpc.aio.Channel,
        retrieval: RetrievalProfile | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(env, policy)
        self._stub = context_pb2_grpc.ContextServiceStub(channel)
        self._options = retrieval_options(retrieval or RetrievalProfile())

    async def _resolve(
        self,
        call: CallInfo,
        query: str,
        entities: Mapping[str, str],
        prefer_first: tuple[str, ...] = (),
    ) -> ContextResult:
        request = resolve_request(call, query, entities, self._options, prefer_first)
        sent_ns = time.time_ns()
        try:
            with rpc_errors(self.stage):
                response = await self._stub.Resolve(request)
        except PeerError as exc:
            if exc.code is not grpc.StatusCode.UNIMPLEMENTED:
                raise
            trace.get_current_span().add_event("context not built: empty context")
            log.warning("context service cannot resolve (%s): the turn goes on ungrounded", exc)
            return ContextResult()
        self._trace_stages(response, sent_ns)
        return _result(response)

    async def _store_answer(self, call: CallInfo, answer: StoredAnswer) -> bool:
        with rpc_errors(self.stage):
            response = await self._stub.StoreAnswer(store_answer_request(call, answer))
        span = trace.get_current_span()
        span.set_attribute("cache.entry_id", response.entry_id)
        if not response.stored:
            span.set_attribute("cache.refused", response.reason)
            log.info("answer not cached for call %s: %s", call.call_id, response.reason)
        return response.stored

    def _trace_stages(self, response: context_pb2.ResolveResponse, sent_ns: int) -> None:
        span = trace.get_current_span()
        span.set_attribute("context.total_ms", ms(response.total_time))
        span.set_attribute("context.confidence", float(response.retrieval_confidence))
        span.set_attribute("context.cache_hit", response.HasField("cache_hit"))
        start = sent_ns
        for report in response.stages:
            name = context_pb2.ResolveStage.Name(report.stage).removeprefix("RESOLVE_STAGE_")
            end = start + int(seconds(report.duration) * 1e9)
            stage = self.env.tracer.start_span(
                f"context.{name.lower()}",
                start_time=start,
                attributes={
                    "stage.count_in": report.count_in,
                    "stage.count_out": report.count_out,
                    "stage.skipped": report.skipped,
                    "stage.detail": report.detail,
                    "stage.reported": True,
                },
            )
            stage.end(end_time=end)
            start = end


def _result(response: context_pb2.ResolveResponse) -> ContextResult:
    match response.WhichOneof("result"):
        case "cache_hit":
            hit = response.cache_hit
            return ContextResult(
                citations=tuple(c.id for c in hit.citations),
                sources=tuple(_citation(c) for c in hit.citations),
                cached_answer=hit.answer or None,
                confidence=float(hit.similarity),
                kb_version=response.kb_version,
                intent=response.intent,
                intent_score=float(response.intent_score),
            )
        case "context_block":
            block = response.context_block
            return ContextResult(
                block=block.text,
                citations=tuple(c.id for c in block.citations),
                sources=tuple(_citation(c) for c in block.citations),
                confidence=float(response.retrieval_confidence),
                kb_version=response.kb_version,
                token_count=block.token_count,
                intent=response.intent,
                intent_score=float(response.intent_score),
            )
        case _:
            return ContextResult(
                kb_version=response.kb_version,
                intent=response.intent,
                intent_score=float(response.intent_score),
            )


def _citation(c: knowledge_pb2.Citation) -> Citation:
    return Citation(
        id=c.id,
        knowledge_base=c.knowledge_base,
        source_id=c.source_id,
        title=c.title,
        uri=c.uri,
        score=float(c.score),
        kb_version=c.kb_version,
    )


def _citation_pb(c: Citation) -> knowledge_pb2.Citation:
    return knowledge_pb2.Citation(
        id=c.id,
        knowledge_base=c.knowledge_base,
        source_id=c.source_id,
        title=c.title,
        uri=c.uri,
        score=c.score,
        kb_version=c.kb_version,
    )


def reply_source(name: str) -> events_pb2.ReplySource.ValueType:
    """``TurnRecord.reply_source`` ("llm", "small_talk" ...) as the proto enum."""
    try:
        return events_pb2.ReplySource.Value(f"REPLY_SOURCE_{name.upper()}")
    except ValueError:
        return events_pb2.REPLY_SOURCE_UNSPECIFIED


def store_answer_request(call: CallInfo, answer: StoredAnswer) -> context_pb2.StoreAnswerRequest:
    """The ``StoreAnswer`` request: the answer and the facts of its turn (the service decides)."""
    return context_pb2.StoreAnswerRequest(
        context=call_context(call),
        query=answer.query,
        answer=answer.answer,
        citations=[_citation_pb(c) for c in answer.citations],
        kb_version=answer.kb_version,
        policy=context_pb2.CachePolicy(uses_live_data=answer.uses_live_data),
        facts=context_pb2.AnswerFacts(
            generated=answer.generated,
            interrupted=answer.interrupted,
            grounded=answer.grounded,
            reply_source=reply_source(answer.reply_source),
            human_written=answer.human_written,
            tool_calls=answer.tool_calls,
            uses_live_data=answer.uses_live_data,
            retrieval_confidence=answer.retrieval_confidence,
        ),
    )
