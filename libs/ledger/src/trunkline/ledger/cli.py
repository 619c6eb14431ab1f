"""``trunkline cost report --tenant T --since 7d [--until ...] [--format table|csv]``.

Reads the ledger database the local stack writes (``<run dir>/ledger.db``), or the one given with
``--database-url`` / ``LEDGER_DATABASE_URL`` (PostgreSQL in production).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from trunkline.ledger.report import UnknownTenantError, build_report, parse_since, to_csv, to_table
from trunkline.ledger.store import make_engine

LEDGER_DB = "ledger.db"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trunkline cost", description="the cost ledger")
    actions = parser.add_subparsers(dest="action", required=True)
    report = actions.add_parser(
        "report", help="cost per qualified outcome per agent version, totals per component"
    )
    report.add_argument("--tenant", required=True)
    report.add_argument("--since", required=True, help="7d, 24h, 30m, or 2026-12-01[T10:00]")
    report.add_argument("--until", help="same forms as --since (default: now)")
    report.add_argument("--format", choices=("table", "csv"), default="table")
    report.add_argument("--shadow", action="store_true", help="candidates' shadow traffic")
    report.add_argument("--database-url", help="SQLAlchemy URL (default: the stack's ledger.db)")
    report.add_argument("--run-dir", type=Path, default=Path(".run"), help="the stack's run dir")
    return parser


def database_url(args: argparse.Namespace) -> str:
    given = args.database_url or os.environ.get("LEDGER_DATABASE_URL")
    if given:
        return str(given)
    path = (args.run_dir / LEDGER_DB).resolve()
    if not path.is_file():
        raise FileNotFoundError(
            f"no ledger database at {path}: start the stack (trunkline stack up) or pass "
            "--database-url"
        )
    return f"sqlite:///{path}"


def cost_main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    now = datetime.now(UTC)
    try:
        since = parse_since(args.since, now)
        until = parse_since(args.until, now) if args.until else now
        engine = make_engine(database_url(args))
        if not inspect(engine).has_table("costs"):
            print(f"{engine.url}: no ledger schema (the ledger never ran here)", file=sys.stderr)
            return 1
        report = build_report(engine, args.tenant, since, until, shadow=args.shadow)
    except (ValueError, FileNotFoundError, UnknownTenantError) as exc:
        print(f"trunkline cost: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        print(f"trunkline cost: database error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    sys.stdout.write(to_csv(report) if args.format == "csv" else to_table(report) + "\n")
    return 0
