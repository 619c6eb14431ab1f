"""The HTTP clients against small real HTTP servers on loopback.

The peers are aiohttp stand-ins implementing the request/response shapes of TEI ``/rerank``,
vLLM ``/score`` and ``/rerank`` (scoring by word overlap, no model), and a CRM JSON API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from trunkline.agents import LiveSource
from trunkline.context.backends.datasource import HttpJsonSource
from trunkline.context.backends.ranker import HttpScoringRanker, ScoringApi
from trunkline.context.core.types import ChunkMeta, Hit, StoredChunk
from trunkline.context.errors import BackendError

pytestmark = pytest.mark.integration


def overlap(query: str, text: str) -> float:
    q = set(query.lower().split())
    return len(q & set(text.lower().split())) / max(1, len(q))


async def tei(request: web.Request) -> web.Response:
    body = await request.json()
    scores = [{"index": i, "score": overlap(body["query"], t)} for i, t in enumerate(body["texts"])]
    return web.json_response(sorted(scores, key=lambda s: -s["score"]))


async def vllm_score(request: web.Request) -> web.Response:
    body = await request.json()
    data = [{"index": i, "score": overlap(body["text_1"], t)} for i, t in enumerate(body["text_2"])]
    return web.json_response({"id": "score-1", "data": data})


async def crm(request: web.Request) -> web.Response:
    if request.match_info["customer"] == "broken":
        return web.json_response({"error": "down"}, status=503)
    items = [{"product_id": "router-x1", "name": "Router X1", "since": "2024"}]
    return web.json_response({"customer": request.match_info["customer"], "products": items})


@pytest.fixture
async def server(unused_tcp_port: int) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/rerank", tei)
    app.router.add_post("/score", vllm_score)
    app.router.add_get("/customers/{customer}/products", crm)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    yield f"http://127.0.0.1:{unused_tcp_port}"
    await runner.cleanup()


def hit(text: str) -> Hit:
    chunk = StoredChunk(text[:8], text, "d.md", "", "h", "d", "", ChunkMeta("acme", ("*",)), 1)
    return Hit(chunk, 0.5)


@pytest.mark.parametrize("api", ["tei", "vllm-score"])
async def test_scoring_endpoint_scores_in_input_order(server: str, api: ScoringApi) -> None:
    ranker = HttpScoringRanker(server, api=api, model="bge-reranker")
    try:
        scores = await ranker.score(
            "switch roaming off", [hit("billing is monthly"), hit("switch roaming off by text")]
        )
    finally:
        await ranker.aclose()
    assert scores == [0.0, 1.0]


async def test_scoring_endpoint_down_is_a_backend_error(unused_tcp_port: int) -> None:
    ranker = HttpScoringRanker(f"http://127.0.0.1:{unused_tcp_port}")
    try:
        with pytest.raises(BackendError, match=r"rank.cross_encoder failed after 2 attempt"):
            await ranker.score("q", [hit("text")])
    finally:
        await ranker.aclose()


async def test_http_json_source_fetches_records_by_entity(server: str) -> None:
    spec = LiveSource(
        name="crm",
        base_url=server,
        path="/customers/{customer_id}/products",
        entity_key="product_id",
        records_path="products",
        text_fields=("name", "since"),
    )
    async with httpx.AsyncClient() as client:
        source = HttpJsonSource(spec, client)
        records = await source.fetch({"customer_id": "c-1"})
        assert [(r.source, r.key, r.text) for r in records] == [
            ("crm", "router-x1", "name: Router X1; since: 2024")
        ]
        with pytest.raises(BackendError, match="503"):
            await source.fetch({"customer_id": "broken"})
