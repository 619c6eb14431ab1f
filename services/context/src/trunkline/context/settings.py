"""Settings of the context process (env ``CONTEXT_*``), read once by ``__main__``.

The Helm chart sets ``CONTEXT_MILVUS_URI`` (a Milvus Lite file by default, a Milvus server URL
in production) and, optionally, ``CONTEXT_RERANK_URL`` (a TEI/vLLM scoring endpoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from trunkline.config import ServiceSettings
from trunkline.context.backends.embedder import INLINE_TOKENS as _EMBED_INLINE_TOKENS
from trunkline.context.backends.mirrored_cache import MirrorSettings
from trunkline.context.backends.tenant_layout import TenantLayout
from trunkline.context.core.cache_match import HitRule

_RULE = HitRule()  # the hit rule's defaults
_MIRROR = MirrorSettings()  # the cache mirror's defaults


class ContextSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONTEXT_", frozen=True, extra="ignore")

    service_name: str = "context"
    grpc_port: int = Field(default=50052, ge=0, lt=65536)
    max_message_bytes: int = Field(default=8 * 1024 * 1024, gt=0)

    milvus_uri: str = Field(
        default="./trunkline-kb.db", description="Milvus Lite file path or Milvus server URL"
    )
    milvus_token: SecretStr = SecretStr("")
    index_type: Literal["FLAT", "HNSW"] = "FLAT"
    tenant_layout: TenantLayout = Field(
        default="partition",
        description="partition: one Milvus partition per tenant (a server allows 1024 by"
        " default); partition_key: tenant as partition key (any number of tenants on a server,"
        " but Milvus Lite then scans every row). Applies when the database is created.",
    )

    agents_dir: Path | None = Field(
        default=None, description="agent spec YAML files; their retrieval settings apply"
    )
    agents_source: Literal["files", "cluster"] = Field(
        default="files",
        description="files: agents_dir; cluster: the active, validated VoiceAgents of "
        "agents_namespace, watched",
    )
    agents_namespace: str = "default"
    kubeconfig: Path | None = Field(default=None, description="cluster: None is in-cluster")

    rerank_url: str = Field(default="", description="TEI/vLLM scoring endpoint; empty: embedded")
    rerank_api: Literal["tei", "vllm-score", "vllm-rerank"] = "tei"
    rerank_model: str = ""
    rerank_timeout_s: float = Field(default=0.5, gt=0, le=30)

    embed_threads: int = Field(default=1, ge=1, le=64)
    embed_inline_tokens: int = Field(
        default=_EMBED_INLINE_TOKENS,
        ge=0,
        le=512,
        description="a single text of at most this many tokens is embedded on the event loop"
        " when the embedding thread is idle (no thread hop); 0: always on the thread",
    )
    embed_batch: int = Field(default=32, ge=1, le=1024)

    cache_enabled: bool = True
    cache_threshold: float = Field(
        default=_RULE.threshold,
        gt=0,
        le=1,
        description="min cosine for a hit when the key terms agree (tuned on the labelled set)",
    )
    cache_candidates: int = Field(
        default=4, ge=1, le=50, description="nearest stored questions screened per lookup"
    )
    cache_verify: bool = Field(
        default=True,
        description="with CONTEXT_RERANK_URL: its cross-encoder confirms each hit (equivalence)",
    )
    cache_verify_floor: float = Field(
        default=_RULE.verify_floor, gt=0, le=1, description="min cosine to reach that check"
    )
    cache_equivalence_threshold: float = Field(
        default=_RULE.equivalence_threshold, ge=0, description="min cross-encoder score"
    )
    cache_fallback_threshold: float = Field(
        default=_RULE.fallback_threshold,
        gt=0,
        le=1,
        description="min cosine when the cross-encoder failed (the embedded fallback)",
    )
    cache_ttl_s: int = Field(default=3600, gt=0)
    cache_mirror: bool = Field(
        default=True,
        description="serve cache lookups from an in-process copy of each scope in use"
        " (Milvus stays the source of truth)",
    )
    cache_mirror_refresh_s: float = Field(
        default=_MIRROR.refresh_s,
        gt=0,
        le=3600,
        description="the most the copy may lag Milvus when served: another replica's stored,"
        " deleted or purged entries show here within this time (this replica's at once)",
    )
    cache_mirror_scope_entries: int = Field(
        default=_MIRROR.scope_entries,
        ge=1,
        lt=16384,
        description="a scope holding more entries is searched in Milvus",
    )
    cache_mirror_max_entries: int = Field(
        default=_MIRROR.max_entries, ge=1, description="entries held over all scopes"
    )
    cache_mirror_idle_s: float = Field(
        default=_MIRROR.idle_s, gt=0, description="a scope unused this long is dropped"
    )

    ingest_batch_documents: int = Field(
        default=64, ge=1, description="documents written together (one flush) during an Ingest"
    )
    max_document_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
