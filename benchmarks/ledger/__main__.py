"""``make bench-ledger``: the cost report over 1,000 synthetic calls, on SQLite and PostgreSQL.

1,000 seeded synthetic calls (two agent versions, 1-12 turns each, ~7,500 events: turns, ends,
escalations; ``trunkline.ledger.synthetic``) are written through the ledger's own store (what
the worker does per event, here in batches of 500), then ``trunkline cost report``'s query and
formatting (``build_report`` + table + CSV) run ``--runs`` times; the target is under a second.
PostgreSQL is the ``pgserver`` wheel's (16), on a Unix socket in a temporary folder, stopped
after. Also timed: the ``trunkline cost report`` command end to end (a new Python process:
imports dominate). Prints a table and writes ``benchmarks/results/ledger.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from trunkline.ledger.migrate import upgrade
from trunkline.ledger.prices import load_price_dir
from trunkline.ledger.report import build_report, to_csv, to_table
from trunkline.ledger.rules import rules_from_dir
from trunkline.ledger.store import LedgerStore, make_engine
from trunkline.ledger.synthetic import synthetic_calls

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "ledger.json"
START = datetime(2026, 11, 1, tzinfo=UTC)
TARGET_S = 1.0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@contextmanager
def postgres() -> Iterator[str]:
    folder = Path(tempfile.mkdtemp(prefix="bench-ledger-pg-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver  # noqa: PLC0415 - dev dependency

        server = pgserver.get_server(folder, cleanup_mode="delete")  # type: ignore[attr-defined]
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def run(engine: Engine, calls: int, runs: int) -> dict[str, Any]:
    upgrade(engine)
    store = LedgerStore(engine, load_price_dir(ROOT / "prices"), rules_from_dir(ROOT / "agents"))
    store.sync_prices()
    facts = list(synthetic_calls(calls, tenant="acme", start=START))
    started = time.perf_counter()
    for first in range(0, len(facts), 500):
        store.apply(facts[first : first + 500])
    ingest_s = time.perf_counter() - started
    until = START + timedelta(days=30)
    times = []
    report = None
    for _ in range(runs):
        started = time.perf_counter()
        report = build_report(engine, "acme", START, until)
        to_table(report)
        to_csv(report)
        times.append(time.perf_counter() - started)
    assert report is not None
    return {
        "events": len(facts),
        "ingest_s": round(ingest_s, 3),
        "ingest_events_per_s": round(len(facts) / ingest_s),
        "report_first_s": round(times[0], 4),
        "report_p50_s": round(statistics.median(times), 4),
        "report_max_s": round(max(times), 4),
        "calls": sum(v.calls for v in report.versions),
        "turns": sum(v.turns for v in report.versions),
        "total": str(sum(v.total for v in report.versions)),
        "per_qualified": {f"{v.agent}@{v.version}": str(v.per_qualified) for v in report.versions},
        "table": to_table(report),
    }


def cli_wall_s(url: str, *, whole_cli: bool) -> float:
    """One ``cost report`` in a new process: through the ``trunkline`` command (which imports
    the whole CLI first), or the ledger's command module alone."""
    args = ["report", "--tenant", "acme", "--since", START.isoformat(), "--database-url", url]
    code = (
        "import sys; from trunkline.cli.main import main; main(['cost', *sys.argv[1:]])"
        if whole_cli
        else "import sys; from trunkline.ledger.cli import cost_main; "
        "sys.exit(cost_main(sys.argv[1:]))"
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'ledger.db'}"
        engine = make_engine(url)
        results["sqlite"] = run(engine, args.calls, args.runs)
        results["sqlite"]["cli_wall_s"] = round(cli_wall_s(url, whole_cli=True), 3)
        results["sqlite"]["command_module_wall_s"] = round(cli_wall_s(url, whole_cli=False), 3)
        engine.dispose()
    if not args.no_postgres:
        with postgres() as pg_url:
            engine = make_engine(pg_url)
            results["postgresql"] = run(engine, args.calls, args.runs)
            engine.dispose()
    print(results["sqlite"]["table"])
    print(
        f"\ncost report over {args.calls} synthetic calls on {cpu_model()}, {os.cpu_count()} "
        f"cores, load {load_before[0]:.2f}; target < {TARGET_S:.0f} s"
    )
    print(f"{'database':<11}{'events':>8}{'ingest/s':>10}{'first s':>9}{'p50 s':>8}{'max s':>8}")
    for name, r in results.items():
        print(
            f"{name:<11}{r['events']:>8}{r['ingest_events_per_s']:>10}{r['report_first_s']:>9}"
            f"{r['report_p50_s']:>8}{r['report_max_s']:>8}"
        )
    sqlite = results["sqlite"]
    print(f"`trunkline cost report` end to end (a new process, SQLite): {sqlite['cli_wall_s']} s"
          f" through the trunkline command, {sqlite['command_module_wall_s']} s through the "
          "ledger's command module alone (Python start and imports included)")  # fmt: skip
    for r in results.values():
        r.pop("table")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "calls": args.calls,
                "runs": args.runs,
                "target_s": TARGET_S,
                "cpu": cpu_model(),
                "cores": os.cpu_count(),
                "load_average_before": list(load_before),
                "load_average_after": list(os.getloadavg()),
                "results": results,
                "met": all(r["report_max_s"] < TARGET_S for r in results.values()),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0 if all(r["report_max_s"] < TARGET_S for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
