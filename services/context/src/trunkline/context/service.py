"""The context service's parts, built from settings: embedder, Milvus, ranker, resolver, ingestor.

``Backends.open`` blocks (it loads the ONNX model and opens or creates the Milvus collections):
``__main__`` runs it in a thread while the server already listens NOT_SERVING.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from trunkline.agents import Retrieval
from trunkline.agents.cluster import ClusterAgents, api_client
from trunkline.context.agents import Agents
from trunkline.context.backends.datasource import DataSource, HttpJsonSource
from trunkline.context.backends.embedder import MiniLMEmbedder
from trunkline.context.backends.equivalence import CrossEncoderCheck
from trunkline.context.backends.guarded import CallPolicy
from trunkline.context.backends.milvus import MilvusAnswerCache, MilvusChunkStore, MilvusDatabase
from trunkline.context.backends.mirrored_cache import MirroredAnswerCache, MirrorSettings
from trunkline.context.backends.ranker import HttpScoringRanker, Ranker
from trunkline.context.backends.store import AnswerCache
from trunkline.context.core.cache_match import HitRule
from trunkline.context.ingest.ingestor import Ingestor
from trunkline.context.resolver import CacheSettings, Resolver
from trunkline.context.settings import ContextSettings


@dataclass
class Backends:
    settings: ContextSettings
    agents: Agents
    embedder: MiniLMEmbedder
    db: MilvusDatabase
    resolver: Resolver
    ingestor: Ingestor
    http: httpx.AsyncClient
    ranker: Ranker | None

    @classmethod
    def open(cls, settings: ContextSettings) -> Backends:
        if settings.agents_source == "cluster":
            source = ClusterAgents(api_client(settings.kubeconfig), settings.agents_namespace)
            agents = Agents.watch_cluster(source)
        else:
            agents = Agents.load(settings.agents_dir)
        embedder = MiniLMEmbedder(
            threads=settings.embed_threads,
            batch_size=settings.embed_batch,
            inline_tokens=settings.embed_inline_tokens,
        )
        try:
            embedder.embed_sync(["warm up"])
            db = MilvusDatabase(
                settings.milvus_uri,
                token=settings.milvus_token.get_secret_value(),
                index_type=settings.index_type,
                layout=settings.tenant_layout,
            )
        except BaseException:
            embedder.close()
            raise
        try:
            db.warm()
        except BaseException:
            embedder.close()
            db.close()
            raise
        store = MilvusChunkStore(db)
        cache: AnswerCache = MilvusAnswerCache(db)
        if settings.cache_mirror:
            cache = MirroredAnswerCache(cache, mirror_settings(settings))
        ranker: HttpScoringRanker | None = None
        if settings.rerank_url:
            ranker = HttpScoringRanker(
                settings.rerank_url,
                api=settings.rerank_api,
                model=settings.rerank_model,
                policy=CallPolicy(timeout_s=settings.rerank_timeout_s, retries=1),
            )
        resolver = Resolver(
            embedder,
            store,
            cache,
            cross_encoder=ranker,
            cache_settings=cache_settings(settings),
            equivalence=CrossEncoderCheck(ranker) if ranker and settings.cache_verify else None,
        )
        return cls(
            settings=settings,
            agents=agents,
            embedder=embedder,
            db=db,
            resolver=resolver,
            ingestor=Ingestor(embedder, store, cache),
            http=httpx.AsyncClient(),
            ranker=ranker,
        )

    def sources(self, retrieval: Retrieval) -> list[DataSource]:
        """The agent's live sources, over the shared HTTP client."""
        return [HttpJsonSource(spec, self.http) for spec in retrieval.live_sources]

    async def close(self) -> None:
        self.agents.close()
        await self.http.aclose()
        if self.ranker is not None:
            await self.ranker.aclose()
        if isinstance(self.resolver.cache, MirroredAnswerCache):
            await self.resolver.cache.aclose()
        self.embedder.close()
        self.db.close()


def cache_settings(settings: ContextSettings) -> CacheSettings:
    """The semantic cache's hit rule and lifetime from the service settings."""
    return CacheSettings(
        enabled=settings.cache_enabled,
        rule=HitRule(
            threshold=settings.cache_threshold,
            verify_floor=settings.cache_verify_floor,
            equivalence_threshold=settings.cache_equivalence_threshold,
            fallback_threshold=settings.cache_fallback_threshold,
        ),
        ttl_s=settings.cache_ttl_s,
        candidates=settings.cache_candidates,
    )


def mirror_settings(settings: ContextSettings) -> MirrorSettings:
    """The semantic cache mirror's refresh bound and sizes from the service settings."""
    return MirrorSettings(
        refresh_s=settings.cache_mirror_refresh_s,
        scope_entries=settings.cache_mirror_scope_entries,
        max_entries=settings.cache_mirror_max_entries,
        idle_s=settings.cache_mirror_idle_s,
    )
