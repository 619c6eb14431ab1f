"""``trunkline kb ingest|list|delete``: the knowledge-base CLI.

By default it talks to the context service over gRPC (``--addr host:port``, the same API the
platform uses: ``Ingest`` client stream, ``ListSources``, ``DeleteSource``). ``--uri`` works on
a Milvus Lite file or Milvus server directly instead (no service running; same storage layout:
a source is ``<knowledge base>/<source id>``). Large ingests show a progress bar.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from rich.progress import Progress

from trunkline.context.convert import DEFAULT_KB, source_key
from trunkline.context.core.filters import check_ident
from trunkline.context.core.types import FOREVER, ChunkMeta
from trunkline.context.errors import ContextError
from trunkline.context.ingest.ingestor import Document, IngestResult, delete_source
from trunkline.context.ingest.parsers import kind_of
from trunkline.proto.common.v1 import call_pb2
from trunkline.proto.context.v1 import context_pb2, context_pb2_grpc
from trunkline.runtime import channel

PIECE = 1024 * 1024  # bytes per Ingest data message (the proto's limit)
LOCAL_BATCH = 64  # documents per write in local mode


def _time(value: str) -> int:
    return int(value) if value.isdigit() else int(datetime.fromisoformat(value).timestamp())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trunkline kb", description="Manage knowledge bases")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--addr", default="127.0.0.1:50052", help="context service host:port")
    where.add_argument("--uri", help="local mode: a Milvus Lite file or Milvus server URI")
    sub = p.add_subparsers(dest="command", required=True)
    ing = sub.add_parser("ingest", help="ingest files or directories")
    ing.add_argument("paths", nargs="+", type=Path)
    ing.add_argument("--tenant", required=True)
    ing.add_argument("--kb", default=DEFAULT_KB, help="knowledge base name")
    ing.add_argument("--roles", default="*", help="comma separated; '*' for every role")
    ing.add_argument("--valid-from", type=_time, default=0, help="epoch seconds or ISO date")
    ing.add_argument("--valid-to", type=_time, default=FOREVER, help="epoch seconds or ISO date")
    ing.add_argument("--entity-field", default="", help="key column of CSV/JSON tickets")
    lst = sub.add_parser("list", help="list a tenant's sources")
    lst.add_argument("--tenant", required=True)
    lst.add_argument("--kb", default="", help="only this knowledge base")
    rm = sub.add_parser("delete", help="delete a source")
    rm.add_argument("source", help="source id (the path given at ingest)")
    rm.add_argument("--tenant", required=True)
    rm.add_argument("--kb", default=DEFAULT_KB)
    return p


def _files(paths: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in candidates:
            if file.is_file():
                try:
                    kind_of(file.name)
                except ContextError:
                    if not path.is_dir():
                        raise
                    continue
                found.append(file)
    return found


def injection_flag(flagged: int) -> str:
    """The ``kb list`` column of a source whose chunks try prompt injection."""
    if not flagged:
        return ""
    return f"\tFLAGGED: {flagged} chunk(s) with instructions for the assistant (screened out)"


def _roles(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(r.strip() for r in args.roles.split(",") if r.strip())


def _line(source: str, status: str, added: int, removed: int) -> str:
    return f"{source}: {status} (+{added} -{removed})"


# --- over gRPC -------------------------------------------------------------------------------


def _timestamp(epoch_s: int) -> Timestamp | None:
    return Timestamp(seconds=epoch_s) if 0 < epoch_s < FOREVER else None


async def _remote(args: argparse.Namespace) -> int:
    ctx = call_pb2.CallContext(tenant_id=args.tenant)
    async with channel(args.addr) as chan:
        stub = context_pb2_grpc.ContextServiceStub(chan)
        if args.command == "list":
            token = ""
            while True:
                page = await stub.ListSources(
                    context_pb2.ListSourcesRequest(
                        context=ctx, knowledge_base=args.kb, page_token=token
                    )
                )
                for s in page.sources:
                    d = s.document
                    print(
                        f"{d.knowledge_base}/{d.source_id}\t{s.chunk_count} chunks"
                        f"\tkb v{d.kb_version}\t{s.content_hash}{injection_flag(s.flagged_chunks)}"
                    )
                token = page.next_page_token
                if not token:
                    return 0
        if args.command == "delete":
            gone = await stub.DeleteSource(
                context_pb2.DeleteSourceRequest(
                    context=ctx, knowledge_base=args.kb, source_id=args.source
                )
            )
            print(f"{args.kb}/{args.source}: deleted ({gone.chunks_removed} chunks)")
            return 0
        return await _remote_ingest(stub, ctx, args)


async def _remote_ingest(
    stub: context_pb2_grpc.ContextServiceAsyncStub,
    ctx: call_pb2.CallContext,
    args: argparse.Namespace,
) -> int:
    files = _files(args.paths)
    total = sum(f.stat().st_size for f in files)
    with Progress(disable=len(files) < 2) as progress:
        task = progress.add_task("ingest", total=total)

        async def stream() -> AsyncIterator[context_pb2.IngestRequest]:
            for i, file in enumerate(files):
                doc = context_pb2.Document(
                    knowledge_base=args.kb,
                    source_id=str(file),
                    allowed_roles=_roles(args),
                    valid_from=_timestamp(args.valid_from),
                    valid_to=_timestamp(args.valid_to),
                    metadata={"entity_field": args.entity_field} if args.entity_field else {},
                )
                yield context_pb2.IngestRequest(context=ctx if i == 0 else None, document=doc)
                data = file.read_bytes()
                for start in range(0, len(data), PIECE):
                    yield context_pb2.IngestRequest(data=data[start : start + PIECE])
                    progress.advance(task, len(data[start : start + PIECE]))

        response = await stub.Ingest(stream())
    failed = 0
    for s in response.sources:
        if s.HasField("error"):
            failed += 1
            print(f"{s.knowledge_base}/{s.source_id}: failed: {s.error.message}", file=sys.stderr)
            continue
        status = "unchanged" if not s.chunks_added else "ingested"
        source = f"{s.knowledge_base}/{s.source_id}"
        print(_line(source, status, s.chunks_added, s.chunks_removed))
    seconds = response.total_time.seconds + response.total_time.nanos / 1e9
    print(
        f"{response.documents} documents: +{response.chunks_added} chunks, "
        f"-{response.chunks_removed}, {response.cache_entries_invalidated} cached answers "
        f"invalidated, {seconds:.1f} s"
    )
    return 1 if failed else 0


# --- local mode (--uri) ----------------------------------------------------------------------


async def _local(args: argparse.Namespace) -> int:
    from trunkline.context.backends.embedder import MiniLMEmbedder  # noqa: PLC0415 - local only
    from trunkline.context.backends.milvus import (  # noqa: PLC0415
        MilvusAnswerCache,
        MilvusChunkStore,
        MilvusDatabase,
    )
    from trunkline.context.ingest.ingestor import Ingestor  # noqa: PLC0415

    db = MilvusDatabase(args.uri)
    embedder = MiniLMEmbedder() if args.command == "ingest" else None
    try:
        store, cache = MilvusChunkStore(db), MilvusAnswerCache(db)
        if args.command == "list":
            for info in await store.sources(args.tenant):
                if not args.kb or info.source.startswith(f"{args.kb}/"):
                    print(
                        f"{info.source}\t{info.chunks} chunks\tkb v{info.kb_version}"
                        f"\t{info.doc_hash}{injection_flag(info.flagged)}"
                    )
            return 0
        if args.command == "delete":
            source = source_key(args.kb, args.source)
            result = await delete_source(store, cache, args.tenant, source)
            print(f"{result.source}: {result.status} ({result.chunks_deleted} chunks)")
            return 0 if result.status == "deleted" else 1
        assert embedder is not None
        ingestor = Ingestor(embedder, store, cache)
        meta = ChunkMeta(args.tenant, _roles(args), args.valid_from, args.valid_to)
        files = _files(args.paths)
        results: list[IngestResult] = []
        with Progress(disable=len(files) < 2) as progress:
            task = progress.add_task("ingest", total=len(files))
            for start in range(0, len(files), LOCAL_BATCH):
                docs = [
                    Document(
                        source_key(args.kb, str(f)),
                        meta,
                        data=f.read_bytes(),
                        entity_field=args.entity_field,
                    )
                    for f in files[start : start + LOCAL_BATCH]
                ]
                results += (await ingestor.ingest_many(docs)).results
                progress.advance(task, len(docs))
        for r in results:
            if r.error is not None:
                print(f"{r.source}: failed: {r.error}", file=sys.stderr)
            else:
                line = _line(r.source, r.status, r.chunks_written, r.chunks_deleted)
                print(f"{line} v{r.kb_version}")
        return 1 if any(r.error for r in results) else 0
    finally:
        if embedder is not None:
            embedder.close()
        db.close()


def kb_main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        check_ident("tenant", args.tenant)
        return asyncio.run(_local(args) if args.uri else _remote(args))
    except grpc.aio.AioRpcError as exc:
        print(f"trunkline kb: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 2
    except (ContextError, ValueError, OSError) as exc:
        print(f"trunkline kb: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(kb_main())
