"""``trunkline kb ingest|list|delete``: the knowledge-base CLI.

The lead hooks :func:`kb_main` into the ``trunkline`` command. It works on a Milvus Lite file or
a Milvus server URI directly (``--uri``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from rich.progress import track

from trunkline.context.backends.embedder import MiniLMEmbedder
from trunkline.context.backends.milvus import MilvusAnswerCache, MilvusChunkStore, MilvusDatabase
from trunkline.context.core.filters import check_ident
from trunkline.context.core.types import FOREVER, ChunkMeta
from trunkline.context.errors import ContextError
from trunkline.context.ingest.ingestor import Ingestor, delete_source
from trunkline.context.ingest.parsers import kind_of


def _time(value: str) -> int:
    return int(value) if value.isdigit() else int(datetime.fromisoformat(value).timestamp())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trunkline kb", description="Manage knowledge bases")
    p.add_argument("--uri", default="./trunkline-kb.db", help="Milvus Lite file or server URI")
    sub = p.add_subparsers(dest="command", required=True)
    ing = sub.add_parser("ingest", help="ingest files or directories")
    ing.add_argument("paths", nargs="+", type=Path)
    ing.add_argument("--tenant", required=True)
    ing.add_argument("--roles", default="*", help="comma separated; '*' for every role")
    ing.add_argument("--valid-from", type=_time, default=0, help="epoch seconds or ISO date")
    ing.add_argument("--valid-to", type=_time, default=FOREVER, help="epoch seconds or ISO date")
    ing.add_argument("--entity-field", default="", help="key column of CSV/JSON tickets")
    lst = sub.add_parser("list", help="list a tenant's sources")
    lst.add_argument("--tenant", required=True)
    rm = sub.add_parser("delete", help="delete a source")
    rm.add_argument("source")
    rm.add_argument("--tenant", required=True)
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


async def _run(args: argparse.Namespace) -> int:
    check_ident("tenant", args.tenant)
    db = MilvusDatabase(args.uri)
    embedder = MiniLMEmbedder() if args.command == "ingest" else None
    try:
        store, cache = MilvusChunkStore(db), MilvusAnswerCache(db)
        if args.command == "list":
            for info in await store.sources(args.tenant):
                print(
                    f"{info.source}\t{info.chunks} chunks\tkb v{info.kb_version}\t{info.doc_hash}"
                )
            return 0
        if args.command == "delete":
            result = await delete_source(store, cache, args.tenant, args.source)
            print(f"{result.source}: {result.status} ({result.chunks_deleted} chunks)")
            return 0 if result.status == "deleted" else 1
        assert embedder is not None
        ingestor = Ingestor(embedder, store, cache)
        meta = ChunkMeta(args.tenant, tuple(args.roles.split(",")), args.valid_from, args.valid_to)
        files = _files(args.paths)
        for file in track(files, description="ingest", disable=len(files) < 2):
            data = file.read_bytes()
            r = await ingestor.ingest(str(file), data, meta, entity_field=args.entity_field)
            print(
                f"{r.source}: {r.status} (+{r.chunks_written} -{r.chunks_deleted}) v{r.kb_version}"
            )
        return 0
    finally:
        if embedder is not None:
            embedder.close()
        db.close()


def kb_main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except (ContextError, ValueError, OSError) as exc:
        print(f"trunkline kb: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(kb_main())
