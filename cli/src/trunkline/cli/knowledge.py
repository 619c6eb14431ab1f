"""Load a tenant's knowledge into the running context service (its ``Ingest`` RPC).

Layout: ``<folder>/<knowledge-base>/<file>``, e.g. ``agents/acme-dental/knowledge/
acme-dental-faq/hours.md``; the sub-folder names the knowledge base (an agent's
``retrieval.data_sources``), the file's path inside it is the source id. Ingest is idempotent by
content hash, so loading the same folder twice changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc import aio

from trunkline.proto.common.v1 import call_pb2
from trunkline.proto.context.v1 import context_pb2, context_pb2_grpc

MIME_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".csv": "text/csv",
    ".json": "application/json",
    ".pdf": "application/pdf",
}
PIECE = 512 * 1024  # bytes per data message (the contract allows up to 1 MiB)


class KnowledgeError(RuntimeError):
    """The knowledge could not be loaded; the text says why."""


@dataclass(frozen=True, slots=True)
class KnowledgeFile:
    knowledge_base: str
    source_id: str
    path: Path

    @property
    def mime_type(self) -> str:
        return MIME_TYPES[self.path.suffix.lower()]


@dataclass(frozen=True, slots=True)
class IngestSummary:
    documents: int
    chunks_added: int
    chunks_unchanged: int
    failed: tuple[str, ...]


def knowledge_files(folder: Path) -> list[KnowledgeFile]:
    """Every ingestible file under ``folder/<knowledge-base>/``, in a stable order."""
    if not folder.is_dir():
        raise KnowledgeError(f"knowledge folder {folder} does not exist")
    found = []
    for kb in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(kb.rglob("*")):
            if path.is_file() and path.suffix.lower() in MIME_TYPES:
                found.append(KnowledgeFile(kb.name, path.relative_to(kb).as_posix(), path))
    if not found:
        raise KnowledgeError(f"no documents under {folder}/<knowledge-base>/")
    return found


async def _requests(
    tenant: str, files: list[KnowledgeFile]
) -> AsyncIterator[context_pb2.IngestRequest]:
    context = call_pb2.CallContext(tenant_id=tenant)
    for file in files:
        document = context_pb2.Document(
            knowledge_base=file.knowledge_base,
            source_id=file.source_id,
            mime_type=file.mime_type,
            title=file.path.stem.replace("-", " "),
            uri=file.path.resolve().as_uri(),
        )
        yield context_pb2.IngestRequest(context=context, document=document)
        data = file.path.read_bytes()
        for start in range(0, len(data), PIECE):
            yield context_pb2.IngestRequest(data=data[start : start + PIECE])


async def ingest(addr: str, tenant: str, folder: Path, timeout_s: float = 120.0) -> IngestSummary:
    """Ingest ``folder`` for ``tenant`` through the context service at ``addr``."""
    files = knowledge_files(folder)
    async with aio.insecure_channel(addr) as channel:
        stub = context_pb2_grpc.ContextServiceStub(channel)
        try:
            reply = await stub.Ingest(_requests(tenant, files), timeout=timeout_s)
        except grpc.RpcError as exc:
            raise KnowledgeError(f"Ingest at {addr} failed: {exc}") from None
    failed = tuple(
        f"{s.knowledge_base}/{s.source_id}: {s.error.message}"
        for s in reply.sources
        if s.HasField("error")
    )
    return IngestSummary(reply.documents, reply.chunks_added, reply.chunks_unchanged, failed)
