"""``trunkline calls``: the stored (unredacted, encrypted) transcripts.

trunkline calls list   [--url URL] [--tenant T]
trunkline calls purge  --call-id ID [--tenant T] [--url URL]     delete one call's transcript
trunkline calls purge  --expired [--url URL]                     delete what is past retention
trunkline calls show   --call-id ID --tenant T [--url URL]       decrypt (key from
                       TRUNKLINE_TRANSCRIPT_KEY_<TENANT>, tenant upper-cased, '-' as '_',
                       else from the tenant's entry in --tenants-file, by default
                       $GATEWAY_TENANTS_FILE or the local stack's .run/tenants.yaml)
trunkline calls new-key                                           a fresh tenant key

The store URL defaults to ``$TRANSCRIPTS_URL`` or ``sqlite:///.run/transcripts.db`` (the gateway
writes there when ``GATEWAY_TRANSCRIPTS_URL`` names it and the tenant's policy allows).
Registered through the ``trunkline.commands`` entry point, like ``kb``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import sqlalchemy as sa
import yaml

from trunkline.redaction.transcripts import (
    DEFAULT_URL,
    TranscriptDecryptError,
    TranscriptKeyError,
    TranscriptStore,
    new_key,
    parse_key,
)

DEFAULT_TENANTS_FILE = ".run/tenants.yaml"  # the local stack's (trunkline up)


def key_env(tenant: str) -> str:
    return "TRUNKLINE_TRANSCRIPT_KEY_" + tenant.upper().replace("-", "_")


def tenant_key(tenant: str, tenants_file: str) -> str:
    """The tenant's key text: its environment variable, else its entry in the tenants file
    (``<tenant>: {transcripts: {key: ...}}``, the gateway's file); empty when neither has it."""
    from_env = os.environ.get(key_env(tenant), "")
    if from_env or not tenants_file or not os.path.isfile(tenants_file):
        return from_env
    try:
        with open(tenants_file, encoding="utf-8") as file:
            data = yaml.safe_load(file)
    except (OSError, yaml.YAMLError):
        return ""
    entry = data.get(tenant) if isinstance(data, dict) else None
    policy = entry.get("transcripts") if isinstance(entry, dict) else None
    return str(policy.get("key") or "") if isinstance(policy, dict) else ""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trunkline calls", description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="action", required=True)
    url = argparse.ArgumentParser(add_help=False)
    url.add_argument("--url", default=os.environ.get("TRANSCRIPTS_URL", DEFAULT_URL))
    listing = actions.add_parser("list", parents=[url], help="stored calls")
    listing.add_argument("--tenant")
    purge = actions.add_parser("purge", parents=[url], help="delete stored transcripts")
    which = purge.add_mutually_exclusive_group(required=True)
    which.add_argument("--call-id", help="delete this call's transcript")
    which.add_argument("--expired", action="store_true", help="delete what is past retention")
    purge.add_argument("--tenant", help="only this tenant's call")
    show = actions.add_parser("show", parents=[url], help="decrypt one call's transcript")
    show.add_argument("--call-id", required=True)
    show.add_argument("--tenant", required=True)
    show.add_argument(
        "--tenants-file", default=os.environ.get("GATEWAY_TENANTS_FILE", DEFAULT_TENANTS_FILE)
    )
    actions.add_parser("new-key", help="print a fresh tenant key (URL-safe base64)")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.action == "new-key":
        print(new_key())
        return 0
    try:
        store = TranscriptStore(args.url)
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        print(f"trunkline calls: cannot open transcript store {args.url}: {exc}", file=sys.stderr)
        return 2
    try:
        return _run(args, store)
    finally:
        store.close()


def _run(args: argparse.Namespace, store: TranscriptStore) -> int:
    if args.action == "list":
        rows = store.calls(args.tenant)
        for tenant, call_id, turns in rows:
            print(f"{tenant}\t{call_id}\t{turns} turns")
        if not rows:
            print("no stored transcripts", file=sys.stderr)
        return 0
    if args.action == "purge":
        if args.expired:
            print(f"deleted {store.purge_expired(time.time())} expired turns")
            return 0
        deleted = store.purge_call(args.call_id, args.tenant)
        if deleted == 0:
            print(f"no stored transcript for call {args.call_id!r}", file=sys.stderr)
            return 1
        print(f"deleted {deleted} turns of call {args.call_id}")
        return 0
    try:
        key = parse_key(tenant_key(args.tenant, args.tenants_file), args.tenant)
        stored = store.read(args.tenant, args.call_id, key)
    except (TranscriptKeyError, TranscriptDecryptError) as exc:
        where = f"${key_env(args.tenant)} or {args.tenants_file}"
        print(f"trunkline calls show: {exc} (key from {where})", file=sys.stderr)
        return 2
    for turn in stored:
        print(json.dumps({"turn": turn.turn_index, **turn.record}, ensure_ascii=False))
    return 0


if __name__ == "__main__":  # python -m trunkline.redaction.cli (the chart's retention CronJob)
    raise SystemExit(main(sys.argv[1:]))
