"""``trunkline cache list|show|purge``: what the semantic cache replays, per tenant and agent.

By default it talks to the context service over gRPC (``--addr host:port``:
``ListCacheEntries``, ``DeleteCacheEntries``); ``--uri`` works on a Milvus Lite file or a Milvus
server directly instead (no service running), as ``trunkline kb`` does. An unknown tenant is an
error that names it (exit status 2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime

import grpc

from trunkline.context.core.filters import check_ident
from trunkline.context.core.types import CacheEntry, EntrySelector
from trunkline.context.errors import ContextError
from trunkline.proto.common.v1 import call_pb2
from trunkline.proto.context.v1 import context_pb2, context_pb2_grpc
from trunkline.runtime import channel


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trunkline cache", description="See and remove what the semantic cache replays"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--addr", default="127.0.0.1:50052", help="context service host:port")
    where.add_argument("--uri", help="local mode: a Milvus Lite file or Milvus server URI")
    sub = p.add_subparsers(dest="command", required=True)

    def scoped(name: str, help: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help)
        cmd.add_argument("--tenant", required=True)
        cmd.add_argument("--agent", default="", help="agent name (every version) or name.version")
        cmd.add_argument("--role", default="", help="only entries served to this caller role")
        return cmd

    lst = scoped("list", "list a tenant's cached answers")
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    show = sub.add_parser("show", help="one cached answer in full")
    show.add_argument("entry_id")
    show.add_argument("--tenant", required=True)
    purge = scoped("purge", "delete cached answers (of one agent, or --all of the tenant)")
    purge.add_argument("entry_ids", nargs="*", help="only these entries")
    purge.add_argument("--all", action="store_true", help="every agent of the tenant")
    return p


def _selector(args: argparse.Namespace) -> EntrySelector:
    ids = tuple(getattr(args, "entry_ids", ()) or ())
    if args.command == "show":
        ids = (args.entry_id,)
    return EntrySelector(
        agent=getattr(args, "agent", "").strip().lower(),
        role=getattr(args, "role", ""),
        entry_ids=ids,
    )


def _when(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _short(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _print(args: argparse.Namespace, entries: Sequence[CacheEntry]) -> int:
    if args.command == "show":
        if not entries:
            print(
                f"trunkline cache: no entry {args.entry_id!r} in tenant {args.tenant!r}",
                file=sys.stderr,
            )
            return 1
        e = entries[0]
        print(
            f"entry      {e.entry_id}\nagent      {e.agent}\nrole       {e.role}\n"
            f"kb version {e.kb_version}\nstored     {_when(e.stored_at)}\n"
            f"expires    {_when(min(e.expires_at, 253402300799))}\n"
            f"citations  {', '.join(e.citations) or '-'}\n"
            f"question   {e.query}\nanswer     {e.answer}"
        )
        return 0
    if getattr(args, "json", False):
        for e in entries:
            print(json.dumps(asdict(e)))
        return 0
    for e in entries:
        print(
            f"{e.entry_id}  {e.agent}  {e.role}  kb v{e.kb_version}  {_when(e.stored_at)}"
            f"  {_short(e.query, 60)!r} -> {_short(e.answer, 60)!r}"
        )
    print(f"{len(entries)} cached answer(s) in tenant {args.tenant!r}", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> None:
    check_ident("tenant", args.tenant)
    if args.command == "purge" and not (args.agent or args.all or args.entry_ids):
        raise ValueError(
            "purge needs --agent NAME, entry ids, or --all (every agent of the tenant)"
        )


# --- over gRPC -------------------------------------------------------------------------------


def _entry_of(e: context_pb2.CacheEntry) -> CacheEntry:
    return CacheEntry(
        entry_id=e.entry_id,
        agent=e.agent,
        role=e.role,
        kb_version=int(e.kb_version or 0),
        query=e.query,
        answer=e.answer,
        citations=tuple(e.citation_ids),
        stored_at=int(e.stored_at.seconds),
        expires_at=int(e.expires_at.seconds),
    )


async def _remote(args: argparse.Namespace) -> int:
    ctx = call_pb2.CallContext(tenant_id=args.tenant)
    s = _selector(args)
    async with channel(args.addr) as chan:
        stub = context_pb2_grpc.ContextServiceStub(chan)
        if args.command == "purge":
            gone = await stub.DeleteCacheEntries(
                context_pb2.DeleteCacheEntriesRequest(
                    context=ctx, agent=s.agent, role=s.role, entry_ids=list(s.entry_ids)
                )
            )
            print(f"deleted {gone.deleted} cached answer(s) of tenant {args.tenant!r}")
            return 0
        entries: list[CacheEntry] = []
        token = ""
        while True:
            page = await stub.ListCacheEntries(
                context_pb2.ListCacheEntriesRequest(
                    context=ctx,
                    agent=s.agent,
                    role=s.role,
                    entry_ids=list(s.entry_ids),
                    page_token=token,
                )
            )
            entries += [_entry_of(e) for e in page.entries]
            token = page.next_page_token
            if not token:
                return _print(args, entries)


# --- local mode (--uri) ----------------------------------------------------------------------


async def _local(args: argparse.Namespace) -> int:
    from pymilvus import MilvusException  # noqa: PLC0415 - local mode only

    from trunkline.context import cache_admin  # noqa: PLC0415
    from trunkline.context.backends.milvus import (  # noqa: PLC0415
        MilvusAnswerCache,
        MilvusChunkStore,
        MilvusDatabase,
    )

    try:
        db = MilvusDatabase(args.uri)
    except MilvusException as exc:
        raise ValueError(
            f"cannot open {args.uri}: {exc.message} (in use by a running service?)"
        ) from exc
    try:
        store, cache = MilvusChunkStore(db), MilvusAnswerCache(db)
        if args.command == "purge":
            n = await cache_admin.delete_cache_entries(store, cache, args.tenant, _selector(args))
            print(f"deleted {n} cached answer(s) of tenant {args.tenant!r}")
            return 0
        entries = await cache_admin.cache_entries(store, cache, args.tenant, _selector(args))
        return _print(args, entries)
    finally:
        db.close()


def cache_main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _check(args)
        return asyncio.run(_local(args) if args.uri else _remote(args))
    except grpc.aio.AioRpcError as exc:
        print(f"trunkline cache: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 2
    except (ContextError, ValueError, OSError) as exc:
        print(f"trunkline cache: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(cache_main())
