"""The semantic cache end to end with real MiniLM embeddings and Milvus Lite: the labelled set
(true paraphrases hit, near-misses never do, no hit crosses a role or a tenant), the store rule
and role scopes over gRPC, the admin RPCs and ``trunkline cache``, and the equivalence check
through a scoring endpoint (a TEI-shaped stand-in on loopback)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from pymilvus import DataType, MilvusClient

from trunkline.agents import Retrieval
from trunkline.context import cache_eval
from trunkline.context.backends.equivalence import CrossEncoderCheck
from trunkline.context.backends.milvus import ANSWERS, MilvusDatabase
from trunkline.context.backends.ranker import HttpScoringRanker
from trunkline.context.core.cache_policy import AnswerFacts
from trunkline.context.core.types import Caller
from trunkline.context.resolver import CacheSettings, Resolver
from trunkline.context.server import CONTEXT_SERVICE, ContextService, register
from trunkline.context.service import Backends
from trunkline.context.settings import ContextSettings
from trunkline.proto.common.v1 import call_pb2
from trunkline.proto.context.v1 import context_pb2, context_pb2_grpc
from trunkline.proto.events.v1 import events_pb2
from trunkline.runtime import ServiceShell

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CACHE_SET = ROOT / "tests" / "data" / "context" / "cache_pairs.yaml"
NOW = 1_760_000_000
Stub = context_pb2_grpc.ContextServiceStub
SOURCE = events_pb2.ReplySource
GROUNDED = context_pb2.AnswerFacts(
    grounded=True, reply_source=SOURCE.REPLY_SOURCE_LLM, retrieval_confidence=0.9
)


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    settings = ContextSettings(milvus_uri=str(tmp_path_factory.mktemp("milvus") / "kb.db"))
    opened = Backends.open(settings)
    yield opened
    asyncio.run(opened.close())


@pytest.fixture
async def server(backends: Backends) -> AsyncIterator[tuple[Stub, int]]:
    servicer = ContextService(lambda: backends, clock=lambda: float(NOW))
    shell = ServiceShell(
        ContextSettings(grpc_port=0, drain_seconds=0.5),
        services=[CONTEXT_SERVICE],
        ready=servicer.ready,
        recheck_seconds=0.05,
    )
    port = await shell.start(lambda s: register(s, servicer))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield Stub(channel), port
    await channel.close()
    await shell.shutdown()


def ctx(tenant: str, role: str = "caller", agent: str = "helpdesk", shadow: bool = False) -> object:
    return call_pb2.CallContext(
        tenant_id=tenant,
        caller=call_pb2.Caller(role=role),
        agent=call_pb2.AgentRef(name=agent, version="1"),
        shadow=shadow,
    )


async def ingest(stub: Stub, tenant: str, roles: list[str], text: bytes) -> None:
    async def stream() -> AsyncIterator[context_pb2.IngestRequest]:
        yield context_pb2.IngestRequest(
            context=ctx(tenant),  # type: ignore[arg-type]
            document=context_pb2.Document(
                knowledge_base="faq", source_id=f"{roles[0]}.md", allowed_roles=roles
            ),
        )
        yield context_pb2.IngestRequest(data=text)

    await stub.Ingest(stream())


async def ask(stub: Stub, tenant: str, query: str, role: str = "caller") -> str:
    response = await stub.Resolve(
        context_pb2.ResolveRequest(context=ctx(tenant, role), query=query)  # type: ignore[arg-type]
    )
    return response.cache_hit.answer if response.WhichOneof("result") == "cache_hit" else ""


async def offer(
    stub: Stub,
    tenant: str,
    query: str,
    answer: str,
    *,
    role: str = "caller",
    facts: context_pb2.AnswerFacts | None = GROUNDED,
    shadow: bool = False,
    **policy: object,
) -> context_pb2.StoreAnswerResponse:
    kb = await stub.Resolve(
        context_pb2.ResolveRequest(context=ctx(tenant, role), query=query)  # type: ignore[arg-type]
    )
    response: context_pb2.StoreAnswerResponse = await stub.StoreAnswer(
        context_pb2.StoreAnswerRequest(
            context=ctx(tenant, role, shadow=shadow),  # type: ignore[arg-type]
            query=query,
            answer=answer,
            kb_version=kb.kb_version,
            policy=context_pb2.CachePolicy(**policy),  # type: ignore[arg-type]
            facts=facts,
        )
    )
    return response


# --- the labelled set --------------------------------------------------------------------------


async def test_labelled_set_paraphrases_hit_and_near_misses_never_do(backends: Backends) -> None:
    cset = cache_eval.load(CACHE_SET)
    resolver = backends.resolver
    ids = await cache_eval.store_entries(cset, resolver, now=NOW)
    figures = cache_eval.score(cset, await cache_eval.ask(cset, resolver, ids, now=NOW))
    kinds = {q.kind for q in cset.questions}
    assert {"number", "weekday", "time", "money", "entity", "negation", "opposite"} <= kinds
    assert {"role", "tenant"} <= kinds
    assert figures.paraphrases >= 30
    assert figures.near_misses >= 30
    assert figures.false_hits == 0, figures.wrong
    assert figures.cross_role_hits == 0
    assert figures.cross_tenant_hits == 0
    assert figures.paraphrase_hit_rate >= 0.8, figures.wrong
    threshold = resolver.cache_settings.rule.threshold
    rows = await cache_eval.sweep(cset, resolver, ids, [threshold], now=NOW)
    alone = next(r for r in rows if not r["key_terms"])
    keyed = next(r for r in rows if r["key_terms"])
    assert keyed["false_hits"] == 0
    assert alone["false_hits"] > 0, "cosine alone answers near-misses at the same threshold"


def test_a_bad_labelled_set_names_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "set.yaml"
    bad.write_text(
        "tenants:\n  acme: {agent: bot, roles: [caller]}\n"
        "entries:\n  - {id: a, tenant: acme, role: caller, query: q, answer: x}\n"
        "questions:\n  - {entry: a, asked: q2, same: true, kind: paraphrase}\n"
        "  - {entry: nope, asked: q3, same: false, kind: topic}\n"
    )
    with pytest.raises(cache_eval.CacheSetError, match=r"set\.yaml:7: unknown entry 'nope'"):
        cache_eval.load(bad)


# --- the store rule and role scopes over gRPC --------------------------------------------------


async def test_only_grounded_llm_or_knowledge_or_human_answers_are_stored(
    server: tuple[Stub, int],
) -> None:
    stub, _ = server
    tenant = "t-store-rule"
    await ingest(stub, tenant, ["*"], b"# Hours\nThe help desk is open from 9 am to 5 pm.")
    query = "When is the help desk open?"
    for source in (
        "CACHE",
        "DEFLECTION",
        "GOODBYE",
        "SMALL_TALK",
        "REPEAT",
        "FALLBACK",
        "GREETING",
    ):
        facts = replace_facts(reply_source=SOURCE.Value(f"REPLY_SOURCE_{source}"))
        refused = await offer(stub, tenant, query, "From 9 to 5.", facts=facts)
        assert (refused.stored, refused.reason.split(":")[0]) == (False, "reply_source"), source
    for facts, code in [
        (replace_facts(grounded=False), "not_grounded"),
        (replace_facts(tool_calls=1), "tool_calls"),
        (replace_facts(uses_live_data=True), "live_data"),
        (replace_facts(interrupted=True), "truncated"),
        (replace_facts(generated="From 9 to 5. Bring your ID."), "truncated"),
        (replace_facts(retrieval_confidence=0.05), "low_confidence"),
        (None, "reply_source"),  # no facts: nothing is known, nothing is stored
    ]:
        refused = await offer(stub, tenant, query, "From 9 to 5.", facts=facts)
        assert (refused.stored, refused.reason.split(":")[0]) == (False, code)
    shadow = await offer(stub, tenant, query, "From 9 to 5.", shadow=True)
    assert (shadow.stored, shadow.reason) == (False, "shadow")
    assert await ask(stub, tenant, query) == ""
    knowledge = await offer(
        stub,
        tenant,
        query,
        "From 9 to 5.",
        facts=replace_facts(reply_source=SOURCE.REPLY_SOURCE_KNOWLEDGE),
    )
    assert knowledge.stored
    assert await ask(stub, tenant, "when is the help desk open") == "From 9 to 5."
    human = context_pb2.AnswerFacts(human_written=True)
    written = await offer(
        stub, tenant, "Is the help desk open at Easter?", "No, closed.", facts=human
    )
    assert written.stored


def replace_facts(**changes: object) -> context_pb2.AnswerFacts:
    facts = context_pb2.AnswerFacts()
    facts.CopyFrom(GROUNDED)
    for name, value in changes.items():
        setattr(facts, name, value)
    return facts


async def test_answers_are_served_only_to_the_role_and_tenant_they_were_stored_for(
    server: tuple[Stub, int],
) -> None:
    stub, _ = server
    memo = b"# Overrides\nOperators waive a late cancellation fee once a year in billing."
    public = b"# Fees\nA late cancellation costs 25 dollars."
    for tenant in ("t-roles", "t-roles-other"):
        await ingest(stub, tenant, ["operator"], memo)
        await ingest(stub, tenant, ["caller"], public)
    query = "How do I waive a late cancellation fee?"
    stored = await offer(
        stub, "t-roles", query, "In billing, once a year.", role="operator", scope_to_role=True
    )
    assert stored.stored, stored.reason
    assert await ask(stub, "t-roles", query, role="operator") == "In billing, once a year."
    assert await ask(stub, "t-roles", query, role="caller") == ""
    assert await ask(stub, "t-roles-other", query, role="operator") == ""
    fee = "Is there a fee for a late cancellation?"
    assert (await offer(stub, "t-roles", fee, "Yes, 25 dollars.")).stored
    assert await ask(stub, "t-roles", fee, role="caller") == "Yes, 25 dollars."
    assert await ask(stub, "t-roles", fee, role="operator") == ""


# --- admin: the RPCs and `trunkline cache` -----------------------------------------------------


async def test_list_show_and_purge_per_tenant_agent_and_role(server: tuple[Stub, int]) -> None:
    stub, port = server
    tenant = "t-admin"
    await ingest(stub, tenant, ["*"], b"# Hours\nOpen from 9 am to 5 pm, closed on Sunday.")
    for query, answer, role in [
        ("When are you open?", "From 9 to 5.", "caller"),
        ("Are you open on Sunday?", "No, closed on Sunday.", "caller"),
        ("When are you open?", "9 to 5 (staff note).", "operator"),
    ]:
        assert (await offer(stub, tenant, query, answer, role=role)).stored
    listed = await stub.ListCacheEntries(
        context_pb2.ListCacheEntriesRequest(context=ctx(tenant), agent="helpdesk")  # type: ignore[arg-type]
    )
    assert sorted((e.role, e.query) for e in listed.entries) == [
        ("caller", "Are you open on Sunday?"),
        ("caller", "When are you open?"),
        ("operator", "When are you open?"),
    ]
    assert {e.agent for e in listed.entries} == {"helpdesk.1"}
    paged = await stub.ListCacheEntries(
        context_pb2.ListCacheEntriesRequest(context=ctx(tenant), page_size=2)  # type: ignore[arg-type]
    )
    assert len(paged.entries) == 2
    assert paged.next_page_token == "2"
    none = await stub.ListCacheEntries(
        context_pb2.ListCacheEntriesRequest(context=ctx(tenant), agent="other-agent")  # type: ignore[arg-type]
    )
    assert list(none.entries) == []

    cli = await run_cli(
        "--addr", f"127.0.0.1:{port}", "list", "--tenant", tenant, "--role", "caller"
    )
    assert cli[0] == 0
    assert "When are you open?" in cli[1]
    assert "staff note" not in cli[1]
    sunday = next(e for e in listed.entries if "Sunday" in e.query)
    shown = await run_cli(
        "--addr", f"127.0.0.1:{port}", "show", sunday.entry_id, "--tenant", tenant
    )
    assert shown[0] == 0
    assert "No, closed on Sunday." in shown[1]
    assert "role       caller" in shown[1]
    refused = await run_cli("--addr", f"127.0.0.1:{port}", "purge", "--tenant", tenant)
    assert refused[0] == 2
    assert "--all" in refused[2]
    purged = await run_cli(
        "--addr", f"127.0.0.1:{port}", "purge", "--tenant", tenant, "--agent", "helpdesk",
        "--role", "operator",
    )  # fmt: skip
    assert purged == (0, f"deleted 1 cached answer(s) of tenant '{tenant}'\n", "")
    assert await ask(stub, tenant, "When are you open?", role="caller") == "From 9 to 5."
    assert await ask(stub, tenant, "When are you open?", role="operator") == ""
    gone = await stub.DeleteCacheEntries(
        context_pb2.DeleteCacheEntriesRequest(context=ctx(tenant), entry_ids=[sunday.entry_id])  # type: ignore[arg-type]
    )
    assert gone.deleted == 1
    assert await ask(stub, tenant, "Are you open on Sunday?") == ""

    unknown = await run_cli("--addr", f"127.0.0.1:{port}", "list", "--tenant", "t-nobody")
    assert unknown[0] == 2
    assert "NOT_FOUND" in unknown[2]
    assert "unknown tenant 't-nobody'" in unknown[2]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.DeleteCacheEntries(
            context_pb2.DeleteCacheEntriesRequest(context=ctx(tenant), entry_ids=["not hex"])  # type: ignore[arg-type]
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


PREPARE = """
import asyncio, sys
import numpy as np
from trunkline.context.backends.milvus import MilvusAnswerCache, MilvusChunkStore, MilvusDatabase
from trunkline.context.core.cache_policy import CacheScope

async def main() -> None:
    db = MilvusDatabase(sys.argv[1])
    store, cache = MilvusChunkStore(db), MilvusAnswerCache(db)
    info = await store.record_change("t-local", ["caller"])
    vector = np.ones(384, dtype=np.float32) / np.sqrt(384)
    scope = CacheScope("t-local", "bot.1", "caller", info.kb_version)
    await cache.store(scope, query="Do you deliver?", vector=vector, answer="Yes, on weekdays.",
                      citations=[], stored_at=1_760_000_000, expires_at=1_760_000_060)
    db.close()

asyncio.run(main())
"""


async def test_cache_cli_works_on_a_milvus_file_too(tmp_path: Path) -> None:
    # A Milvus Lite file is held by the process that opened it: prepared in a child process.
    uri = str(tmp_path / "kb.db")
    prepare = await asyncio.create_subprocess_exec(sys.executable, "-c", PREPARE, uri)
    assert await prepare.wait() == 0
    listed = await run_cli("--uri", uri, "list", "--tenant", "t-local", "--json")
    assert listed[0] == 0, listed[2][-2000:]
    assert '"answer": "Yes, on weekdays."' in listed[1]
    unknown = await run_cli("--uri", uri, "list", "--tenant", "t-ghost")
    assert unknown[0] == 2
    assert "unknown tenant 't-ghost'" in unknown[2]
    purged = await run_cli("--uri", uri, "purge", "--tenant", "t-local", "--all")
    assert purged[:2] == (0, "deleted 1 cached answer(s) of tenant 't-local'\n")
    again = await run_cli("--uri", uri, "list", "--tenant", "t-local", "--json")
    assert again[:2] == (0, "")


async def run_cli(*argv: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "trunkline.context.cache_cli", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


# --- the equivalence check through a scoring endpoint ------------------------------------------


@pytest.fixture
async def scorer(unused_tcp_port: int) -> AsyncIterator[tuple[str, dict[str, float]]]:
    """A TEI ``/rerank`` stand-in answering the scores the test sets (``down``: 503)."""
    scores: dict[str, float] = {}

    async def rerank(request: web.Request) -> web.Response:
        if scores.get("down"):
            return web.json_response({"error": "overloaded"}, status=503)
        body = await request.json()
        return web.json_response(
            [{"index": i, "score": scores.get(t, 0.0)} for i, t in enumerate(body["texts"])]
        )

    app = web.Application()
    app.router.add_post("/rerank", rerank)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    yield f"http://127.0.0.1:{unused_tcp_port}", scores
    await runner.cleanup()


async def test_the_rerank_endpoint_confirms_hits_and_its_failure_falls_back_stricter(
    backends: Backends, scorer: tuple[str, dict[str, float]]
) -> None:
    url, scores = scorer
    ranker = HttpScoringRanker(url)
    base = backends.resolver
    rule = replace(base.cache_settings.rule, fallback_threshold=0.95)
    resolver = Resolver(
        base.embedder, base.store, base.cache,
        cache_settings=CacheSettings(rule=rule), equivalence=CrossEncoderCheck(ranker),
    )  # fmt: skip
    tenant, agent = "t-verify", "bot"
    info = await base.store.record_change(tenant, ["caller"])
    stored_query = "What time do you open on Monday?"
    facts = AnswerFacts(heard="At 8 am.", grounded=True, retrieval_confidence=1.0)
    stored = await resolver.store_answer(
        stored_query, facts, [], tenant=tenant, role="caller", agent=agent,
        kb_version=info.kb_version, now=NOW,
    )  # fmt: skip
    assert stored.stored
    caller = Caller(tenant, "caller", NOW)

    async def lookup(query: str) -> tuple[bool, str]:
        result = await resolver.resolve(query, caller, Retrieval(), agent=agent)
        cache = next(s for s in result.stages if s.name == "cache")
        return result.cached is not None, cache.detail

    try:
        paraphrase = "When do you open on Mondays?"
        scores[stored_query] = 0.1
        hit, detail = await lookup(paraphrase)
        assert (hit, detail) == (False, "miss: equivalence 0.10 < 0.50")
        scores[stored_query] = 0.9
        hit, detail = await lookup(paraphrase)
        assert hit
        assert detail.endswith("equivalence 0.90")
        hit, detail = await lookup("When do you open on Tuesdays?")
        assert not hit
        assert "key terms differ" in detail  # never reaches the endpoint
        scores["down"] = 1.0
        hit, detail = await lookup(paraphrase)
        assert not hit
        assert detail.startswith("miss: ")
        assert detail.endswith("< 0.95")
        hit, detail = await lookup(stored_query)
        assert (hit, detail) == (True, "hit (fallback) 1.000")
    finally:
        await ranker.aclose()


def test_a_cache_stored_before_role_scopes_is_dropped_not_served(tmp_path: Path) -> None:
    uri = str(tmp_path / "old.db")
    client = MilvusClient(uri=uri)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("answer_id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("tenant", DataType.VARCHAR, max_length=64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=384)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
    client.create_collection(ANSWERS, schema=schema, index_params=index)
    client.insert(ANSWERS, [{"answer_id": "a1", "tenant": "acme", "vector": [0.1] * 384}])
    client.close()
    db = MilvusDatabase(uri)
    try:
        fields = {f["name"] for f in db.client.describe_collection(ANSWERS)["fields"]}
        assert {"role", "stored_at"} <= fields
        left = db.client.query(ANSWERS, filter='tenant == "acme"', output_fields=["answer_id"])
        assert left == []
    finally:
        db.close()
