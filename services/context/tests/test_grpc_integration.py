"""The ContextService gRPC surface on a real in-process server, with real MiniLM embeddings and
Milvus Lite in a temp dir: ingest over the client stream, Resolve with stage reports and
citations, the semantic cache (StoreAnswer, hit, invalidation), tenant isolation, statuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped, unused-ignore]

from trunkline.context.server import CONTEXT_SERVICE, ContextService, register
from trunkline.context.service import Backends
from trunkline.context.settings import ContextSettings
from trunkline.proto.common.v1 import call_pb2
from trunkline.proto.context.v1 import context_pb2, context_pb2_grpc
from trunkline.proto.events.v1 import events_pb2
from trunkline.runtime import ServiceShell

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data" / "context"
NOW = 1_760_000_000
Stage = context_pb2.ResolveStage
Stub = context_pb2_grpc.ContextServiceStub
HOURS = b"# Support hours\nThe help desk is open from 9 am to 5 pm on weekdays."
GROUNDED = context_pb2.AnswerFacts(
    grounded=True, reply_source=events_pb2.REPLY_SOURCE_LLM, retrieval_confidence=0.9
)


def ctx(tenant: str, role: str = "caller", agent: str = "", version: str = "1") -> object:
    return call_pb2.CallContext(
        tenant_id=tenant,
        caller=call_pb2.Caller(role=role),
        agent=call_pb2.AgentRef(name=agent, version=version if agent else ""),
    )


def doc(source_id: str, kb: str = "faq", **fields: object) -> context_pb2.Document:
    return context_pb2.Document(knowledge_base=kb, source_id=source_id, **fields)  # type: ignore[arg-type]


async def ingest(
    stub: Stub, tenant: str, docs: Sequence[tuple[context_pb2.Document, bytes]], piece: int = 64
) -> context_pb2.IngestResponse:
    async def stream() -> AsyncIterator[context_pb2.IngestRequest]:
        for i, (document, data) in enumerate(docs):
            yield context_pb2.IngestRequest(
                context=ctx(tenant) if i == 0 else None,  # type: ignore[arg-type]
                document=document,
            )
            for start in range(0, len(data), piece):
                yield context_pb2.IngestRequest(data=data[start : start + piece])

    response: context_pb2.IngestResponse = await stub.Ingest(stream())
    return response


async def resolve(
    stub: Stub, tenant: str, query: str, role: str = "caller", agent: str = "", **options: object
) -> context_pb2.ResolveResponse:
    response: context_pb2.ResolveResponse = await stub.Resolve(
        context_pb2.ResolveRequest(
            context=ctx(tenant, role, agent),  # type: ignore[arg-type]
            query=query,
            options=context_pb2.RetrievalOptions(**options),  # type: ignore[arg-type]
        )
    )
    return response


async def status_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value.code()


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    settings = ContextSettings(
        milvus_uri=str(tmp_path_factory.mktemp("milvus") / "kb.db"),
        agents_dir=ROOT / "agents",
        ingest_batch_documents=2,
    )
    opened = Backends.open(settings)
    yield opened
    asyncio.run(opened.close())


@pytest.fixture
async def server(backends: Backends) -> AsyncIterator[tuple[Stub, grpc.aio.Channel]]:
    servicer = ContextService(lambda: backends, clock=lambda: float(NOW))
    shell = ServiceShell(
        ContextSettings(grpc_port=0, drain_seconds=0.5),
        services=[CONTEXT_SERVICE],
        ready=servicer.ready,
        recheck_seconds=0.05,
    )
    port = await shell.start(lambda s: register(s, servicer))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield Stub(channel), channel
    await channel.close()
    await shell.shutdown()


@pytest.fixture
def stub(server: tuple[Stub, grpc.aio.Channel]) -> Stub:
    return server[0]


async def test_ingest_stream_then_resolve_reports_every_stage_with_citations(stub: Stub) -> None:
    roaming = (DATA / "acme" / "roaming.md").read_bytes()
    billing = (DATA / "acme" / "billing.md").read_bytes()
    response = await ingest(
        stub,
        "t-resolve",
        [
            (doc("roaming.md", mime_type="text/markdown", title="Roaming"), roaming),
            (doc("billing.md"), billing),
            (doc("virus.exe", mime_type="application/x-msdownload"), b"MZ"),
        ],
    )
    assert response.documents == 3
    assert [s.source_id for s in response.sources] == ["roaming.md", "billing.md", "virus.exe"]
    assert response.sources[2].error.reason == "INVALID_ARGUMENT"
    assert "unsupported mime_type" in response.sources[2].error.message
    assert response.chunks_added == sum(s.chunks_added for s in response.sources) > 4

    result = await resolve(stub, "t-resolve", "How do I switch roaming off?", top_k=3)
    assert result.WhichOneof("result") == "context_block"
    block = result.context_block
    assert "ROAM OFF" in block.text
    assert 0 < block.token_count <= 400
    first = block.citations[0]
    assert (first.knowledge_base, first.source_id) == ("faq", "roaming.md")
    assert first.kb_version == result.kb_version
    assert [s.stage for s in result.stages] == [
        Stage.RESOLVE_STAGE_CACHE_LOOKUP,
        Stage.RESOLVE_STAGE_METADATA_FILTER,
        Stage.RESOLVE_STAGE_SEMANTIC_SEARCH,
        Stage.RESOLVE_STAGE_DEDUPLICATE,
        Stage.RESOLVE_STAGE_RANK,
        Stage.RESOLVE_STAGE_SET_ALGEBRA,
    ]
    stages = {s.stage: s for s in result.stages}
    assert stages[Stage.RESOLVE_STAGE_CACHE_LOOKUP].skipped  # no agent: no cache
    search = stages[Stage.RESOLVE_STAGE_SEMANTIC_SEARCH]
    assert not search.skipped
    assert search.count_out >= stages[Stage.RESOLVE_STAGE_DEDUPLICATE].count_out
    assert "embed" in search.detail
    assert 'tenant == "t-resolve"' in stages[Stage.RESOLVE_STAGE_METADATA_FILTER].detail
    assert stages[Stage.RESOLVE_STAGE_RANK].detail == "embedded"
    assert stages[Stage.RESOLVE_STAGE_RANK].count_out == 3
    assert result.retrieval_confidence > 0.4

    again = await ingest(stub, "t-resolve", [(doc("roaming.md"), roaming)])
    assert (again.chunks_added, again.chunks_removed) == (0, 0)
    assert again.chunks_unchanged > 0
    listed = await stub.ListSources(
        context_pb2.ListSourcesRequest(context=ctx("t-resolve"), page_size=1)
    )
    assert [s.document.source_id for s in listed.sources] == ["billing.md"]
    rest = await stub.ListSources(
        context_pb2.ListSourcesRequest(context=ctx("t-resolve"), page_token=listed.next_page_token)
    )
    assert [s.document.source_id for s in rest.sources] == ["roaming.md"]
    assert rest.next_page_token == ""


async def test_cache_hit_after_store_answer_and_invalidation_after_reingest(stub: Stub) -> None:
    tenant, agent = "t-cache", "helpdesk"
    await ingest(stub, tenant, [(doc("hours.md"), HOURS)])
    miss = await resolve(stub, tenant, "When is the help desk open?", agent=agent)
    assert miss.WhichOneof("result") == "context_block"
    assert not miss.stages[0].skipped
    assert miss.stages[0].detail == "miss"

    def store(**policy: object) -> object:
        return stub.StoreAnswer(
            context_pb2.StoreAnswerRequest(
                context=ctx(tenant, agent=agent),  # type: ignore[arg-type]
                query="When is the help desk open?",
                answer="From 9 to 5 on weekdays.",
                citations=miss.context_block.citations,
                kb_version=miss.kb_version,
                policy=context_pb2.CachePolicy(**policy),  # type: ignore[arg-type]
                facts=GROUNDED,
            )
        )

    live = await store(uses_live_data=True)
    assert not live.stored  # type: ignore[attr-defined]
    assert live.reason.startswith("live_data")  # type: ignore[attr-defined]
    stored = await store()
    assert stored.stored  # type: ignore[attr-defined]
    duplicate = await store(overwrite=False)
    assert (duplicate.stored, duplicate.reason) == (False, "duplicate")  # type: ignore[attr-defined]
    assert duplicate.entry_id == stored.entry_id  # type: ignore[attr-defined]

    hit = await resolve(stub, tenant, "when is the help desk open", agent=agent)
    assert hit.WhichOneof("result") == "cache_hit"
    assert hit.cache_hit.answer == "From 9 to 5 on weekdays."
    assert hit.cache_hit.cached_query == "When is the help desk open?"
    assert hit.cache_hit.citations[0].source_id == "hours.md"
    assert hit.retrieval_confidence == pytest.approx(hit.cache_hit.similarity)
    assert [s.skipped for s in hit.stages] == [False, True, True, True, True, True]
    other_version = await stub.Resolve(
        context_pb2.ResolveRequest(
            context=ctx(tenant, agent=agent, version="2"), query="When is the help desk open?"
        )
    )
    assert other_version.WhichOneof("result") == "context_block"
    skipped = await resolve(
        stub, tenant, "When is the help desk open?", agent=agent, skip_cache=True
    )
    assert skipped.WhichOneof("result") == "context_block"

    changed = await ingest(stub, tenant, [(doc("hours.md"), HOURS.replace(b"5 pm", b"8 pm"))])
    assert changed.cache_entries_invalidated == 1
    assert changed.chunks_removed == 1
    after = await resolve(stub, tenant, "When is the help desk open?", agent=agent)
    assert after.WhichOneof("result") == "context_block"
    assert "8 pm" in after.context_block.text
    assert int(after.kb_version) > int(miss.kb_version)
    stale = await store()
    assert not stale.stored  # type: ignore[attr-defined]
    assert stale.reason.startswith("kb_changed")  # type: ignore[attr-defined]

    deleted = await stub.DeleteSource(
        context_pb2.DeleteSourceRequest(
            context=ctx(tenant), knowledge_base="faq", source_id="hours.md"
        )
    )
    assert deleted.chunks_removed == 1
    gone = await resolve(stub, tenant, "When is the help desk open?")
    assert len(gone.context_block.citations) == 0


async def test_tenants_never_see_each_others_chunks_or_answers(stub: Stub) -> None:
    secret = b"# Vault\nThe vault code word of tenant one is periwinkle-42."
    await ingest(stub, "t-one", [(doc("vault.md"), secret)])
    await ingest(stub, "t-two", [(doc("hours.md"), HOURS)])
    query = "What is the vault code word of tenant one?"
    one = await resolve(stub, "t-one", query, agent="bot")
    assert "periwinkle-42" in one.context_block.text
    stored = await stub.StoreAnswer(
        context_pb2.StoreAnswerRequest(
            context=ctx("t-one", agent="bot"),
            query=query,
            answer="periwinkle-42",
            kb_version=one.kb_version,
            facts=GROUNDED,
        )
    )
    assert stored.stored
    assert (await resolve(stub, "t-one", query, agent="bot")).WhichOneof("result") == "cache_hit"

    two = await resolve(stub, "t-two", query, agent="bot", top_k=20)
    assert two.WhichOneof("result") == "context_block"
    assert "periwinkle" not in two.context_block.text
    assert {c.source_id for c in two.context_block.citations} <= {"hours.md"}
    assert "periwinkle" not in two.context_block.text


async def test_agent_spec_retrieval_restricts_knowledge_bases_and_skips_live_sources(
    stub: Stub,
) -> None:
    tenant = "t-dental"
    await ingest(
        stub,
        tenant,
        [
            (doc("hours.md", kb="acme-dental-faq"), HOURS),
            (doc("hours.md", kb="internal"), HOURS.replace(b"help desk", b"back office")),
        ],
    )
    result = await resolve(stub, tenant, "When is the help desk open?", agent="acme-dental")
    assert {c.knowledge_base for c in result.context_block.citations} == {"acme-dental-faq"}
    set_algebra = result.stages[-1]
    assert "skipped appointments: call state lacks account_id" in set_algebra.detail

    live = await stub.Resolve(
        context_pb2.ResolveRequest(
            context=ctx(tenant),
            query="When is the help desk open?",
            options=context_pb2.RetrievalOptions(
                knowledge_bases=["internal"],
                set_operations=[
                    context_pb2.SetOperation(
                        operator=context_pb2.SET_OPERATOR_UNION, source="crm.tickets"
                    )
                ],
            ),
            live_records=[
                context_pb2.LiveRecord(source="crm.tickets", id="T-7", text="Open ticket")
            ],
        )
    )
    citations = live.context_block.citations
    assert {c.knowledge_base for c in citations if c.knowledge_base} == {"internal"}
    assert citations[-1].id == "crm.tickets:T-7"
    assert "Open ticket" in live.context_block.text


async def test_error_statuses_are_clear(stub: Stub, server: tuple[Stub, grpc.aio.Channel]) -> None:
    await ingest(stub, "t-staff", [(doc("memo.md", allowed_roles=["staff"]), HOURS)])
    code = grpc.StatusCode
    assert await status_of(resolve(stub, "t-nobody", "hello")) == code.NOT_FOUND
    assert await status_of(resolve(stub, "t-staff", "hello")) == code.PERMISSION_DENIED
    assert await status_of(resolve(stub, "t-staff", "  ", role="staff")) == code.INVALID_ARGUMENT
    assert await status_of(resolve(stub, "Bad Tenant", "hi")) == code.INVALID_ARGUMENT
    assert await status_of(resolve(stub, "", "hi")) == code.INVALID_ARGUMENT
    assert await status_of(resolve(stub, "t-staff", "hi", role="staff", top_k=500)) == (
        code.INVALID_ARGUMENT
    )
    assert (
        await status_of(resolve(stub, "t-staff", "hi", role="staff", knowledge_bases=["a b"]))
        == code.INVALID_ARGUMENT
    )
    assert (
        await status_of(
            stub.DeleteSource(
                context_pb2.DeleteSourceRequest(context=ctx("t-staff"), source_id="missing.md")
            )
        )
        == code.NOT_FOUND
    )
    assert (
        await status_of(
            stub.StoreAnswer(
                context_pb2.StoreAnswerRequest(
                    context=ctx("t-staff", "staff", "bot"), query="q", answer="a", kb_version="v7"
                )
            )
        )
        == code.INVALID_ARGUMENT
    )

    async def data_first() -> AsyncIterator[context_pb2.IngestRequest]:
        yield context_pb2.IngestRequest(context=ctx("t-staff"), data=b"orphan bytes")

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Ingest(data_first())
    assert info.value.code() == code.INVALID_ARGUMENT
    assert "data before any document" in str(info.value.details())
    health = health_pb2_grpc.HealthStub(server[1])
    serving = await health.Check(health_pb2.HealthCheckRequest(service=CONTEXT_SERVICE))
    assert serving.status == health_pb2.HealthCheckResponse.SERVING


async def test_not_ready_while_backends_load() -> None:
    servicer = ContextService(lambda: None)
    shell = ServiceShell(
        ContextSettings(grpc_port=0, drain_seconds=0.5),
        services=[CONTEXT_SERVICE],
        ready=servicer.ready,
        recheck_seconds=0.05,
    )
    port = await shell.start(lambda s: register(s, servicer))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            status = await health.Check(health_pb2.HealthCheckRequest(service=CONTEXT_SERVICE))
            assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await resolve(Stub(channel), "acme", "hi")
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "starting" in str(info.value.details())
    finally:
        await shell.shutdown()


async def test_resolve_names_the_closest_intent_of_the_agents_example_phrases(stub: Stub) -> None:
    """The query's vector is compared with the sample agent's example phrases (real MiniLM)."""
    knowledge = ROOT / "agents" / "acme-dental" / "knowledge" / "acme-dental-faq"
    files = sorted(knowledge.glob("*.md"))
    await ingest(
        stub,
        "t-intents",
        [
            (doc(f.name, kb="acme-dental-faq", mime_type="text/markdown"), f.read_bytes())
            for f in files
        ],
    )

    async def intent(query: str) -> tuple[str, float, float]:
        result = await resolve(stub, "t-intents", query, agent="acme-dental")
        return result.intent, result.intent_score, result.retrieval_confidence

    name, score, _ = await intent("Thanks, that is all, goodbye")
    assert (name, score > 0.9) == ("goodbye", True)
    name, score, _ = await intent("Who won the football world cup in 1966?")
    assert (name, score > 0.75) == ("out_of_domain", True)
    name, score, _ = await intent("How are you doing?")
    assert (name, score > 0.62) == ("small_talk", True)
    # A question the knowledge answers is close to none of them, and well retrieved.
    name, score, confidence = await intent("What are your opening hours on Saturday?")
    assert score < 0.5
    assert confidence > 0.5
    # An agent that is not loaded has no examples: no intent.
    result = await resolve(stub, "t-intents", "goodbye", agent="no-such-agent")
    assert (result.intent, result.intent_score) == ("", 0.0)
