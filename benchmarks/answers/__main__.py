"""``make bench-answers``: which knowledge-answer strategy is most faithful, and how fast, with
the embedded models.

Every question of ``questions.yaml`` goes once through the REAL context service (MiniLM + Milvus
Lite, the agent's knowledge ingested into a fresh database: no semantic-cache entries) and the
REAL llm service (llama.cpp SmolLM2, the agent's prompt compiled by the service, the spec's
sampling and seed), both in this process with the voice benchmark's in-process peers
(``benchmarks.voice.inproc``). The one generated reply is then answered four ways
(``strategies.py``): extractive, raw LLM, guarded LLM, and the spec's own policy.

Per strategy: answers right (every expected fact, no forbidden one), the share of spoken clauses
the guard's checker finds supported (by the agent's prompt, greeting and the turn's block), the
answers stating a number, time or price found in neither the knowledge files, the system prompt
nor the expected facts (an independent check: ``scoring.py``), and the time from the caller's
final transcript to the first speakable clause (Resolve + passage, or Resolve + the LLM's first
clause + the guard). The LLM is not read ahead here (the gateway prefills the prompt while the
caller speaks), so its times are those of a turn whose prompt is evaluated after the caller stops.

Prints a table and writes ``benchmarks/results/answers.json`` with the CPU model and load average.
"""

from __future__ import annotations

import os

from trunkline.llm.backends.openmp import SPIN_COUNT, SPIN_VAR

os.environ.setdefault(SPIN_VAR, SPIN_COUNT)  # as the llm process does, before llama.cpp loads

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from opentelemetry import trace

from benchmarks.answers.questions import QUESTIONS, Question, QuestionSetError, load_questions
from benchmarks.answers.report import machine, summarise, table
from benchmarks.answers.scoring import KnownFacts, judge
from benchmarks.answers.strategies import (
    Answer,
    Generated,
    Turn,
    extractive,
    guarded_llm,
    raw_llm,
    spec_policy,
    supported_clauses,
)
from benchmarks.voice.inproc import CTX, DirectContextSource, DirectLanguageModel
from trunkline.cli.knowledge import _requests, knowledge_files
from trunkline.cli.plan import AppConfig
from trunkline.cli.settings import StackSettings
from trunkline.cli.stack import library_dir
from trunkline.context.server import ContextService
from trunkline.context.service import Backends
from trunkline.context.settings import ContextSettings
from trunkline.gateway.core.clauses import ClauseSplitter
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.grounding import Support
from trunkline.gateway.core.replies import Fallback, GuardPolicy, Retrieved
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.peers.types import (
    CallInfo,
    ContextResult,
    LlmRequest,
    TextDelta,
    ToolCallRequested,
)
from trunkline.gateway.profile import AgentProfile, load_profiles, reply_policy
from trunkline.gateway.session import SessionConfig
from trunkline.gateway.settings import GatewaySettings
from trunkline.llm.backends.factory import build_backend, served_model
from trunkline.llm.convert import Limits
from trunkline.llm.server import LanguageModelService, ServingOptions
from trunkline.llm.settings import LlmSettings
from trunkline.llm.warmup import load_agents, start_backend, warm_up

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "answers.json"
# Measure, do not retry: a slow peer is a figure, not a failure to hide.
POLICY = RetryPolicy(timeout_s=60.0, max_attempts=1)


class Bench:
    """The agent's profile, its policies as the gateway builds them, and the two services."""

    def __init__(self, profile: AgentProfile, tenant: str, context: ContextService,
                 llm: LanguageModelService, knowledge_texts: list[str]) -> None:  # fmt: skip
        env = PeerEnv(SystemClock(), trace.get_tracer("benchmarks.answers"))
        self.profile, self.tenant = profile, tenant
        self.context = DirectContextSource(env, context, profile.retrieval, POLICY)
        self.llm = DirectLanguageModel(env, llm, profile, POLICY)
        # As Gateway.session_config and Pipeline build them.
        self.replies = reply_policy(profile)
        self.guard = GuardPolicy(
            enabled=profile.grounding.guard,
            fallback=Fallback(profile.grounding.fallback.value),
            safe_line=profile.grounding.safe_line,
        )
        self.min_clause_words = SessionConfig().min_clause_words
        self.first_clause_words = GatewaySettings().first_clause_words or None
        self.support = Support((profile.greeting, profile.system_prompt))
        self.known = KnownFacts([*knowledge_texts, profile.system_prompt])

    def call(self, question: Question) -> CallInfo:
        return CallInfo(
            call_id=f"bench-answers-{question.id}",
            tenant=self.tenant,
            agent=self.profile.name,
            agent_version=self.profile.version,
        )

    async def generate(self, call: CallInfo, question: str, context: ContextResult) -> Generated:
        """The reply as ``Pipeline._generate`` cuts it (no tool executor: a tool call ends it,
        as in a gateway without one)."""
        splitter = ClauseSplitter(self.min_clause_words, first_clause_words=self.first_clause_words)
        clauses: list[tuple[str, float]] = []
        text, tools = "", 0
        started = time.perf_counter()
        async for event in self.llm.generate(LlmRequest(call, question, (), context)):
            if isinstance(event, TextDelta):
                text += event.text
                clauses += [(c, time.perf_counter() - started) for c in splitter.push(event.text)]
            elif isinstance(event, ToolCallRequested):
                tools += 1
        clauses += [(c, time.perf_counter() - started) for c in splitter.flush()]
        return Generated(tuple(clauses), text, tools, time.perf_counter() - started)

    async def ask(self, question: Question) -> dict[str, Any]:
        call = self.call(question)
        started = time.perf_counter()
        context = await self.context.resolve(call, question.ask, {})
        resolve_s = time.perf_counter() - started
        generated = await self.generate(call, question.ask, context)
        retrieved = Retrieved(
            block=context.block,
            confidence=context.confidence,
            cached_answer=context.cached_answer,
            intent=context.intent,
            intent_score=context.intent_score,
            live_data=context.uses_live_data,
        )
        support = self.support.copy()
        support.add(context.block)
        turn = Turn(
            question.ask, retrieved, support, self.replies, self.guard, self.min_clause_words
        )
        answers = {
            "extractive": extractive(turn),
            "raw_llm": raw_llm(generated),
            "guarded_llm": guarded_llm(turn, generated),
            "spec_policy": spec_policy(turn, generated),
        }
        return {
            "id": question.id,
            "ask": question.ask,
            "resolve_ms": round(resolve_s * 1000, 1),
            "retrieval_confidence": round(context.confidence, 3),
            "intent": context.intent,
            "intent_score": round(context.intent_score, 3),
            "block": context.block,
            "llm": {
                "text": generated.text,
                "tool_calls": generated.tool_calls,
                "total_ms": round(generated.total_s * 1000, 1),
            },
            "strategies": {
                name: self.score(question, answer, support, resolve_s)
                for name, answer in answers.items()
            },
        }

    def score(
        self, question: Question, answer: Answer, support: Support, resolve_s: float
    ) -> dict[str, Any]:
        verdict = judge(question, answer.text)
        expected = [a for fact in question.must_contain for a in fact]
        first = None if answer.first_s is None else round((resolve_s + answer.first_s) * 1000, 1)
        return {
            "text": answer.text,
            "correct": verdict.correct,
            "missing": list(verdict.missing),
            "forbidden": list(verdict.forbidden),
            "clauses": len(answer.spoken),
            "supported_clauses": supported_clauses(answer, support),
            "invented": list(self.known.invented(answer.text, expected)),
            "first_ms": first,
            "held_back": answer.held_back,
            "unsupported": list(answer.unsupported),
            "fallback": answer.fallback,
            "source": answer.source,
        }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    questions = load_questions(args.questions)
    agents: Path = args.agents
    profiles = load_profiles(agents)
    profile = profiles.get(questions.agent)
    if profile is None:
        raise QuestionSetError(
            f"{questions.path}: agent {questions.agent!r} is not in {agents} "
            f"(agents there: {', '.join(sorted(profiles)) or 'none'})"
        )
    asked = questions.questions[: args.limit] if args.limit else questions.questions
    knowledge = knowledge_files(agents / profile.name / "knowledge")
    before = machine()
    loaded = time.perf_counter()

    same = AppConfig(  # the knobs the local stack gives the llm service (cli/plan.py)
        agents_dir=agents, tenants_file=agents, milvus_uri="",
        llm_library_dir=library_dir(StackSettings().llm_library_dir),
    )  # fmt: skip
    llm_settings = LlmSettings(
        agents_dir=agents,
        library_dir=same.llm_library_dir,
        first_token_timeout_s=same.llm_first_token_timeout_s,
        threads_batch=same.llm_threads_batch,
        first_tokens_threads=same.llm_threads_batch,
    )
    llm = LanguageModelService(
        build_backend(llm_settings),
        ServingOptions(
            limits=Limits(
                context_tokens=llm_settings.context_size,
                default_max_tokens=llm_settings.default_max_tokens,
            ),
            model=served_model(llm_settings),
        ),
    )
    work = Path(tempfile.mkdtemp(prefix="bench-answers-"))
    backends: Backends | None = None
    try:
        await start_backend(llm.backend)
        await warm_up(llm.backend, load_agents(agents), llm.options.model)
        llm.mark_warm()
        settings = ContextSettings(milvus_uri=str(work / "kb.db"), agents_dir=agents)
        backends = await asyncio.to_thread(Backends.open, settings)
        context = ContextService(lambda: backends)
        await context.Ingest(_requests(questions.tenant, knowledge), CTX)
        bench = Bench(
            profile, questions.tenant, context, llm, [f.path.read_text() for f in knowledge]
        )
        load_s = time.perf_counter() - loaded
        # One unmeasured turn: the first embedding and search pay one-off costs.
        await bench.ask(Question("warm-up", "Hello, is this the dentist?", (("",),), ()))
        rows = []
        for question in asked:
            row = await bench.ask(question)
            rows.append(row)
            marks = "".join(
                "+" if row["strategies"][s]["correct"] else "." for s in row["strategies"]
            )
            print(f"  {question.id:22} {marks}  llm: {row['llm']['text'][:70]!r}", flush=True)
    finally:
        await llm.backend.aclose()
        if backends is not None:
            await backends.close()
        shutil.rmtree(work, ignore_errors=True)
    summary = summarise(rows)
    return {
        "benchmark": "answers",
        "agent": f"{profile.name}@{profile.version}",
        "questions_file": str(questions.path.relative_to(ROOT))
        if questions.path.is_relative_to(ROOT)
        else str(questions.path),
        "model": profile.model.name,
        "sampling": profile.model.sampling.model_dump(mode="json"),
        "knowledge_answers": profile.grounding.knowledge_answers.value,
        "guard_fallback": profile.grounding.fallback.value,
        "machine_before": before,
        "machine_after": machine(),
        "load_s": round(load_s, 1),
        "summary": summary,
        "questions": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.answers", description=__doc__)
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--agents", type=Path, default=ROOT / "agents")
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args()
    args.agents = args.agents.resolve()
    try:
        result = asyncio.run(run(args))
    except QuestionSetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print(table(result["summary"]))
    m = result["machine_before"]
    print(
        f"\n{len(result['questions'])} questions, {result['agent']}, {result['model']}; "
        f"CPU {m['cpu']} ({m['cores']} cores), load average before "
        f"{m['load_average'][0]:.2f}, after {result['machine_after']['load_average'][0]:.2f}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
