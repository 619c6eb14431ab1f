"""``trunkline eval``: the conversation eval against the local stack.

trunkline eval [FILE|DIR ...] [--agent NAME] [--tag TAG] [--name NAME] [--out DIR]

Loads the scenarios (default: every ``agents/*/eval`` folder), checks them (``file:line`` for
each problem, unknown agents and tenants named) before anything starts, brings the stack up as
``trunkline demo`` does (or reuses the one that is up), loads each scenario agent's knowledge
for its tenant, places one simulated call per scenario, and prints the table; ``--out`` gets
``report.json`` and ``report.html``. A stack this command started is stopped at the end unless
``--keep-up``. Exit code: 0 when the eval ran (whatever the pass rate) unless ``--min-pass-rate``
says otherwise, 1 when it could not run, 2 for bad scenarios or arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from trunkline.cli import stack
from trunkline.cli.evalcall import StackDriver
from trunkline.cli.knowledge import KnowledgeError, ingest
from trunkline.cli.record import StackRecord, load
from trunkline.cli.settings import StackSettings
from trunkline.cli.tenants import read_tenants
from trunkline.evaluation import (
    EvalReport,
    Scenario,
    ScenarioError,
    ScenarioScore,
    ScoringOptions,
    SourcesError,
    check_references,
    html_page,
    load_agent_sources,
    load_scenarios,
    run_eval,
    select,
    table,
)
from trunkline.evaluation.report import first_problem
from trunkline.evaluation.sources import KNOWLEDGE, AgentSources

EVAL_DIR = "eval"


def add_eval_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``eval`` to the ``trunkline`` command's subparsers (``parents``: --run-dir etc.)."""
    p = subparsers.add_parser(
        "eval", parents=parents, help="conversation eval: scenarios through the local stack"
    )
    p.add_argument("paths", nargs="*", type=Path,
                   help="scenario files or folders (default: agents/*/eval)")  # fmt: skip
    p.add_argument("--agent", action="append", default=[], help="only this agent's scenarios")
    p.add_argument("--tag", action="append", default=[], help="only scenarios with this tag")
    p.add_argument("--name", action="append", default=[], help="only this scenario")
    p.add_argument("--out", type=Path, help="write report.json, report.html (and recordings)")
    p.add_argument("--recordings", action="store_true", help="both sides of each call as WAV")
    p.add_argument("--no-transcribe", action="store_true",
                   help="do not transcribe the reply audio back (faster)")  # fmt: skip
    p.add_argument("--latency-factor", type=float, default=1.0,
                   help="multiply each turn's latency budget (a busy, slow machine)")  # fmt: skip
    p.add_argument("--escalation-unsupported", action="store_true",
                   help="a stack without the hitl service: a missing escalation is not scored "
                   "(default: it fails)")  # fmt: skip
    p.add_argument("--min-pass-rate", type=float, help="exit 1 below this pass rate (0..1)")
    p.add_argument("--keep-up", action="store_true", help="leave a stack this command started")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")


def _scenarios(args: argparse.Namespace, agents_dir: Path) -> list[Scenario]:
    paths = list(args.paths) or sorted(agents_dir.glob(f"*/{EVAL_DIR}"))
    if not paths:
        raise ScenarioError([f"no scenario folders ({agents_dir}/*/{EVAL_DIR})"])
    found = load_scenarios(paths)
    return select(found, agents=args.agent, tags=args.tag, names=args.name)


async def _ingest(
    record: StackRecord,
    pairs: set[tuple[str, str]],
    sources: dict[str, AgentSources],
    out: TextIO,
) -> None:
    context = record.get("context")
    if context is None:
        raise KnowledgeError("the stack has no context service")
    for tenant, agent in sorted(pairs):
        folder = sources[agent].spec_file.parent / agent / KNOWLEDGE
        if not folder.is_dir():
            continue
        summary = await ingest(context.url, tenant, folder)
        print(f"knowledge of {agent} for tenant {tenant}: {summary.documents} documents "
              f"({summary.chunks_added} chunks added, {summary.chunks_unchanged} unchanged)",
              file=out, flush=True)  # fmt: skip
        for failure in summary.failed:
            print(f"  failed: {failure}", file=out)


def _progress(out: TextIO) -> Any:
    count = [0]

    def show(score: ScenarioScore) -> None:
        count[0] += 1
        problem = first_problem(score)
        print(f"  [{count[0]}] {score.name:<34} {score.status.value.upper():<11} {problem}",
              file=out, flush=True)  # fmt: skip

    return show


def write_report(report: EvalReport, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / "report.json", folder / "report.html"
    json_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    html_path.write_text(html_page(report))
    return json_path, html_path


async def _evaluate(
    args: argparse.Namespace,
    settings: StackSettings,
    *,
    record: StackRecord,
    scenarios: list[Scenario],
    sources: dict[str, AgentSources],
    out: TextIO,
) -> EvalReport:
    tenants = read_tenants(Path(record.tenants_file))
    check_references(scenarios, sources, {n: t.agents for n, t in tenants.items()},
                     settings.tenant)  # fmt: skip
    pairs = {(s.tenant or settings.tenant, s.agent) for s in scenarios}
    await _ingest(record, pairs, sources, out)
    recordings = args.out / "recordings" if args.out is not None and args.recordings else None
    driver = StackDriver(record, tenants, settings.tenant, sources,
                         transcribe=not args.no_transcribe, recordings=recordings)  # fmt: skip
    options = ScoringOptions(escalation_supported=not args.escalation_unsupported,
                             latency_factor=args.latency_factor)  # fmt: skip
    meta = {"stack": record.run_dir, "latency_factor": args.latency_factor,
            "cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2)}  # fmt: skip
    print(f"running {len(scenarios)} scenarios ({sum(len(s.turns) for s in scenarios)} caller "
          "turns), one call each ...", file=out, flush=True)  # fmt: skip
    return await run_eval(scenarios, driver, sources, options, on_score=_progress(out), meta=meta)


def run_eval_command(
    args: argparse.Namespace, settings: StackSettings, out: TextIO | None = None
) -> int:
    """``trunkline eval``; returns the exit code (``out``: default stdout)."""
    out = out or sys.stdout
    agents_dir = settings.agents_dir.resolve()
    try:
        sources = load_agent_sources(agents_dir)
        scenarios = _scenarios(args, agents_dir)
        check_references(scenarios, sources)
    except (ScenarioError, SourcesError) as exc:
        print(f"eval: cannot use the scenarios:\n{exc}", file=sys.stderr)
        return 2
    if not scenarios:
        print("eval: no scenario matches the filters", file=sys.stderr)
        return 2
    if args.list:
        for s in scenarios:
            print(f"{s.name:<34} {s.agent:<14} {len(s.turns)} turns  {','.join(s.tags)}  "
                  f"{s.where}", file=out)  # fmt: skip
        return 0
    existing = load(settings.run_dir.resolve())
    was_up = existing is not None and all(
        h == stack.SERVING for h in asyncio.run(stack.stack_health(existing)).values()
    )
    code = stack.up(settings, out)
    if code != 0:
        return 1
    record = load(settings.run_dir.resolve())
    try:
        if record is None or not record.media_url:
            print("the stack record has no media stream URL: run `make down` and retry", file=out)
            return 1
        try:
            report = asyncio.run(
                _evaluate(args, settings, record=record, scenarios=scenarios, sources=sources,
                          out=out)
            )  # fmt: skip
        except ScenarioError as exc:
            print(f"eval: cannot use the scenarios:\n{exc}", file=sys.stderr)
            return 2
        except KnowledgeError as exc:
            print(f"eval: {exc}", file=sys.stderr)
            return 1
    finally:
        if not was_up and not args.keep_up:
            stack.down(settings, out)
    print("\n" + table(report), file=out)
    if args.out is not None:
        json_path, html_path = write_report(report, args.out)
        print(f"\nreport: {json_path}  {html_path}", file=out)
    rate = report.summary()["scenarios"]["pass_rate"]
    if args.min_pass_rate is not None and (rate is None or rate < args.min_pass_rate):
        print(f"pass rate {rate} is below --min-pass-rate {args.min_pass_rate}", file=out)
        return 1
    return 0
