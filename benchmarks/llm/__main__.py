"""``python -m benchmarks.llm``: the embedded llama.cpp LLM on a realistic call, old path vs new.

For each variant: warm TTFT p50/p95 over the turns of one multi-turn call of the sample agent
(``agents/acme-dental.yaml``, a context block per turn as the context service renders it), the
TTFT of a turn right after another agent used the model, the cost of a cancelled speculative
start (cancel -> worker free), and the prompt tokens evaluated vs reused per turn. Variants:

- ``before``: context block inside the system prompt, whole prompt evaluated in one call, no
  saved prefix states, 2 threads (the path before issue 3's fixes; still selectable by settings:
  ``LLM_PROMPT_LAYOUT=context_in_system LLM_EVAL_CHUNK_TOKENS=0 LLM_PREFIX_STATES=0``);
- ``after``: the defaults: stable prefix first, prompt evaluated in 32-token chunks, agents'
  prefix states kept, 1 thread;
- ``after-2t``: as ``after`` on 2 threads; ``after-1g2b``: 1 generating, 2 evaluating prompts;
- ``q4_0-1g2b``: as ``after-1g2b`` with the model converted to Q4_0 (``LLM_QUANTIZE``, the
  service's default; the others load the bundled Q4_1 file as it is);
- ``q4_0-1g2b-cpu``: as ``q4_0-1g2b`` with the llama.cpp build for this CPU that ``make install``
  makes where it has AVX-512 (``build/llama-cpu``, see ``trunkline.llm.backends.cpubuild``), in
  a child process (a process loads one llama.cpp); skipped where there is none. The others use
  the wheel's x86-64-v3 build.

Prints a table and writes ``benchmarks/results/llm.json`` with the machine's load average.
``--hog``: quiet vs a CPU hog on one core instead (:mod:`benchmarks.llm.hog`,
``benchmarks/results/llm-hog.json``).
"""

from __future__ import annotations

import os
import sys

from trunkline.llm.backends.openmp import SPIN_COUNT, SPIN_VAR, WAIT_POLICY, WAIT_VAR

if "--hog-child" not in sys.argv:  # a hog child runs with exactly the setting's environment
    os.environ.setdefault(SPIN_VAR, SPIN_COUNT)  # as the llm process does, before llama loads
    os.environ.setdefault(WAIT_VAR, WAIT_POLICY)

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.llm import hog
from trunkline.agents import AgentSpec, load_agent_spec
from trunkline.llm.backends import CallPolicy, cpubuild
from trunkline.llm.backends.llamacpp import LlamaCppBackend, LlamaCppConfig, smollm2_model_path
from trunkline.llm.backends.requantize import Quantization
from trunkline.llm.convert import context_text
from trunkline.llm.core import (
    ChatMessage,
    Done,
    GenerationRequest,
    PromptLayout,
    TextDelta,
    ToolCallEvent,
    compile_prompt,
    prompt_from_spec,
)
from trunkline.llm.warmup import warm_up

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "agents" / "acme-dental.yaml"
RESULTS = ROOT / "benchmarks" / "results" / "llm.json"
HOG_RESULTS = ROOT / "benchmarks" / "results" / "llm-hog.json"
REPLY_TOKENS = 40
CANCEL_AFTER_S = 0.04
TOOL_RESULT = '{"balance_usd": 40, "next_appointment": "2025-06-03T09:00", "name": "Dana"}'

TURNS: tuple[tuple[str, str], ...] = (
    (
        "Hi, are you open on Saturday?",
        "[1] Acme Dental is open Monday to Friday 8 am to 6 pm and Saturday 9 am to 1 pm. "
        "(faq#hours)\n[2] The practice is closed on Sundays and public holidays. (faq#holidays)",
    ),
    (
        "How much is a check-up and cleaning?",
        "[1] A check-up with cleaning costs 95 dollars and takes about 45 minutes. "
        "(prices#checkup)\n[2] Most dental insurance plans cover one check-up every six "
        "months. (faq#insurance)\n[3] New patients should arrive ten minutes early. (faq#new)",
    ),
    (
        "Do you do teeth whitening too?",
        "[1] In-office teeth whitening costs 299 dollars per session. (prices#whitening)\n"
        "[2] Whitening is not recommended during pregnancy. (faq#whitening)",
    ),
    (
        "Can you check my account? The number is 48213.",
        "[1] Account details are only given after the caller states the account number. "
        "(faq#privacy)",
    ),
    (
        "Is there anything free next Tuesday morning?",
        "[1] Appointments can be booked from 8 am; the first slot on weekdays is 8 am. "
        "(faq#booking)\n[2] Cancellations need 24 hours notice or a 25 dollar fee applies. "
        "(faq#cancel)",
    ),
    (
        "Thanks. Where exactly are you?",
        "[1] Acme Dental is at 120 Main Street, Springfield, next to the post office. "
        "(faq#address)\n[2] Free parking is behind the building. (faq#parking)",
    ),
)


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    layout: PromptLayout
    eval_chunk: int
    prefix_states: int
    threads: int
    threads_batch: int
    quantize: Quantization = "keep"
    cpu_build: bool = False  # the llama.cpp build for this CPU, run in a child process


VARIANTS = (
    Variant("before", "context_in_system", 0, 0, 2, 2),
    Variant("after", "stable_prefix", 32, 4, 1, 1),
    Variant("after-2t", "stable_prefix", 32, 4, 2, 2),
    Variant("after-1g2b", "stable_prefix", 32, 4, 1, 2),
    Variant("q4_0-1g2b", "stable_prefix", 32, 4, 1, 2, "q4_0"),
    Variant("q4_0-1g2b-cpu", "stable_prefix", 32, 4, 1, 2, "q4_0", cpu_build=True),
)
CPU_BUILD = ROOT / cpubuild.BUILD_DIR


@dataclass
class Turn:
    label: str
    ttft_ms: float
    prompt_tokens: int
    reused: int
    text: str

    @property
    def evaluated(self) -> int:
        return self.prompt_tokens - self.reused


@dataclass
class Outcome:
    variant: Variant
    warmup_s: float = 0.0
    turns: list[Turn] = field(default_factory=list)
    switch: list[Turn] = field(default_factory=list)
    cancel_ms: list[float] = field(default_factory=list)


def request(
    spec: AgentSpec,
    llama: LlamaCppBackend,
    layout: PromptLayout,
    history: Sequence[ChatMessage],
    user: str | None,
    *,
    facts: str,
    max_tokens: int = REPLY_TOKENS,
) -> GenerationRequest:
    parts = prompt_from_spec(spec, history, user)
    parts = replace(
        parts,
        context_text=context_text(_Block(facts)),
        sampling=replace(parts.sampling, max_tokens=max_tokens),
    )
    compiled = compile_prompt(
        parts,
        llama.count_tokens,
        tool_mode=llama.tool_mode,
        message_overhead=llama.message_overhead,
        layout=layout,
    )
    return compiled.request


@dataclass(frozen=True, slots=True)
class _Block:
    text: str


async def generate(
    llama: LlamaCppBackend, req: GenerationRequest, label: str
) -> tuple[Turn, ToolCallEvent | None]:
    text: list[str] = []
    call: ToolCallEvent | None = None
    done: Done | None = None
    async for event in llama.generate(req):
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, ToolCallEvent):
            call = event
        else:
            done = event
    if done is None or done.usage is None or done.ttft_s is None:
        raise RuntimeError(f"{label}: the stream ended without usage and TTFT")
    turn = Turn(
        label,
        round(done.ttft_s * 1000, 1),
        done.usage.prompt_tokens,
        done.usage.cached_prompt_tokens,
        "".join(text).strip(),
    )
    return turn, call


async def one_call(spec: AgentSpec, llama: LlamaCppBackend, out: Outcome) -> None:
    layout = out.variant.layout
    history: list[ChatMessage] = [ChatMessage("assistant", spec.greeting)]
    for i, (user, facts) in enumerate(TURNS):
        turn, call = await generate(
            llama, request(spec, llama, layout, history, user, facts=facts), f"turn {i + 1}"
        )
        out.turns.append(turn)
        print(f"  {turn.label}: {turn.ttft_ms:.0f} ms, {turn.evaluated}/{turn.reused}", flush=True)
        history.append(ChatMessage("user", user))
        if call is None:
            history.append(ChatMessage("assistant", turn.text))
            continue
        history += [
            ChatMessage("assistant", turn.text, tool_calls=(call.call,)),
            ChatMessage("tool", TOOL_RESULT, tool_call_id=call.call.id, name=call.call.name),
        ]
        answer, _ = await generate(
            llama, request(spec, llama, layout, history, None, facts=facts), f"turn {i + 1} tool"
        )
        out.turns.append(answer)
        history.append(ChatMessage("assistant", answer.text))


async def agent_switches(
    spec: AgentSpec, other: AgentSpec, llama: LlamaCppBackend, out: Outcome, rounds: int
) -> None:
    layout = out.variant.layout
    greeting = [ChatMessage("assistant", spec.greeting)]
    for i in range(rounds):
        user, facts = TURNS[i % len(TURNS)]
        await generate(
            llama, request(other, llama, layout, [], "Hello?", facts="", max_tokens=4), "other"
        )
        turn, _ = await generate(
            llama,
            request(spec, llama, layout, greeting, user, facts=facts, max_tokens=4),
            f"switch {i + 1}",
        )
        out.switch.append(turn)


async def cancels(spec: AgentSpec, llama: LlamaCppBackend, out: Outcome, trials: int) -> None:
    """A speculative start with a new caller turn, cancelled ``CANCEL_AFTER_S`` later."""
    history = [ChatMessage("assistant", spec.greeting)]
    for i in range(trials):
        user, facts = TURNS[(i + 1) % len(TURNS)]
        history += [ChatMessage("user", f"Question {i}?"), ChatMessage("assistant", "Sure.")]
        req = request(spec, llama, out.variant.layout, history, user, facts=facts)
        task = asyncio.create_task(_drain(llama, req))
        await asyncio.sleep(CANCEL_AFTER_S)
        cancelled = time.perf_counter()
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await llama.wait_idle()
        out.cancel_ms.append(round((time.perf_counter() - cancelled) * 1000, 1))


async def _drain(llama: LlamaCppBackend, req: GenerationRequest) -> None:
    async for _ in llama.generate(req):
        pass


async def run_variant(variant: Variant, spec: AgentSpec, other: AgentSpec, rounds: int) -> Outcome:
    config = LlamaCppConfig(
        smollm2_model_path(),
        n_threads=variant.threads,
        n_threads_batch=variant.threads_batch,
        eval_chunk=variant.eval_chunk,
        prefix_states=variant.prefix_states,
        quantize=variant.quantize,
    )
    # measured, not retried: a slow turn shows as a slow TTFT rather than a retry
    llama = LlamaCppBackend(config, policy=CallPolicy(first_token_timeout_s=120.0, retries=0))
    await llama.start()
    out = Outcome(variant)
    try:
        started = time.perf_counter()
        await warm_up(llama, [spec, other])  # as the service does before it turns SERVING
        out.warmup_s = round(time.perf_counter() - started, 2)
        await one_call(spec, llama, out)
        await agent_switches(spec, other, llama, out, rounds)
        await cancels(spec, llama, out, rounds)
    finally:
        await llama.aclose()
    return out


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(out: Outcome) -> dict[str, Any]:
    ttft = [t.ttft_ms for t in out.turns]
    switch = [t.ttft_ms for t in out.switch]
    return {
        "variant": out.variant.name,
        "layout": out.variant.layout,
        "eval_chunk": out.variant.eval_chunk,
        "prefix_states": out.variant.prefix_states,
        "threads": out.variant.threads,
        "threads_batch": out.variant.threads_batch,
        "quantize": out.variant.quantize,
        "warmup_s": out.warmup_s,
        "ttft_ms_p50": pct(ttft, 0.5),
        "ttft_ms_p95": pct(ttft, 0.95),
        "switch_ttft_ms_p50": pct(switch, 0.5),
        "cancel_to_free_ms_p50": pct(out.cancel_ms, 0.5),
        "cancel_to_free_ms_p95": pct(out.cancel_ms, 0.95),
        "prompt_tokens_mean": round(statistics.mean(t.prompt_tokens for t in out.turns), 1),
        "evaluated_mean": round(statistics.mean(t.evaluated for t in out.turns), 1),
        "reused_mean": round(statistics.mean(t.reused for t in out.turns), 1),
        "turns": [
            {
                "label": t.label,
                "ttft_ms": t.ttft_ms,
                "prompt_tokens": t.prompt_tokens,
                "evaluated": t.evaluated,
                "reused": t.reused,
            }
            for t in out.turns
        ],
        "switch_turns": [
            {"ttft_ms": t.ttft_ms, "evaluated": t.evaluated, "reused": t.reused} for t in out.switch
        ],
        "cancel_to_free_ms": out.cancel_ms,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'variant':<10} {'TTFT p50':>9} {'p95':>7} {'switch':>7} {'cancel p50':>10} "
        f"{'p95':>7} {'prompt':>7} {'eval':>6} {'reused':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['variant']:<10} {r['ttft_ms_p50']:>7.0f}ms {r['ttft_ms_p95']:>5.0f}ms "
            f"{r['switch_ttft_ms_p50']:>5.0f}ms {r['cancel_to_free_ms_p50']:>8.0f}ms "
            f"{r['cancel_to_free_ms_p95']:>5.0f}ms {r['prompt_tokens_mean']:>7.0f} "
            f"{r['evaluated_mean']:>6.0f} {r['reused_mean']:>7.0f}"
        )
    print("\nper turn, prompt tokens evaluated / reused:")
    labels = [t["label"] for t in rows[0]["turns"]]
    for r in rows:
        cells = [f"{t['evaluated']}/{t['reused']}" for t in r["turns"]]
        print(f"  {r['variant']:<10} " + "  ".join(cells))
    if any(len(r["turns"]) != len(labels) for r in rows):
        print("  (turn counts differ: a tool call happened in some variants)")


def other_agent(spec: AgentSpec) -> AgentSpec:
    """A second agent sharing the model (the agent-switch measurement)."""
    return spec.model_copy(
        update={
            "name": "beta-plumbing",
            "system_prompt": "You are Max, the dispatcher of Beta Plumbing in Springfield. "
            "Answer in one short sentence. We fix leaks, drains and water heaters, "
            "Monday to Saturday 7 am to 7 pm; call-out fee 80 dollars.",
            "tools": [],
        }
    )


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.llm", description=__doc__)
    parser.add_argument("--variants", nargs="*", default=[v.name for v in VARIANTS])
    parser.add_argument("--rounds", type=int, default=5, help="agent switches and cancels")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON report")
    parser.add_argument("--child-rows", type=Path, help=argparse.SUPPRESS)  # a cpu_build child
    parser.add_argument(
        "--hog",
        action="store_true",
        help="instead: quiet vs a CPU hog on one core per thread/wait setting (llm/hog.py)",
    )
    parser.add_argument("--hog-settings", nargs="*", default=[], help="default: all")
    parser.add_argument("--hog-rounds", type=int, default=2, help="calls per setting and pass")
    parser.add_argument("--hog-passes", type=int, default=2, help="passes over the settings")
    parser.add_argument("--hog-child", help=argparse.SUPPRESS)
    parser.add_argument("--hog-first", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.hog_child is not None:
        setting = hog.setting_named(args.hog_child)
        return await hog.child(setting, args.hog_rounds, args.child_rows, hog_first=args.hog_first)
    if args.hog:
        hog_out: Path = HOG_RESULTS if args.out == RESULTS else args.out
        return await asyncio.to_thread(
            hog.main, args.hog_settings, args.hog_rounds, hog_out, args.hog_passes
        )
    if args.child_rows is not None:
        return await child(args.variants, args.rounds, args.child_rows)
    spec = load_agent_spec(AGENT)
    other = other_agent(spec)
    load_before = os.getloadavg()
    rows = []
    for variant in VARIANTS:
        if variant.name in args.variants:
            print(f"running {variant.name} ...", flush=True)
            if variant.cpu_build:
                rows += await in_child(variant, args.rounds)
            else:
                rows.append(summary(await run_variant(variant, spec, other, args.rounds)))
    load_after = os.getloadavg()
    print(f"\nload average before {load_before}, after {load_after} (2 cores)")
    print_table(rows)
    out: Path = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "llm",
        "model": smollm2_model_path().name,
        "agent": spec.ref,
        "reply_tokens": REPLY_TOKENS,
        "cancel_after_ms": CANCEL_AFTER_S * 1000,
        "cpu_count": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "variants": rows,
    }
    await asyncio.to_thread(out.write_text, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


async def in_child(variant: Variant, rounds: int) -> list[dict[str, Any]]:
    """``variant``'s row from a child process that loads the llama.cpp build for this CPU."""
    with tempfile.TemporaryDirectory(prefix="bench-llm-") as tmp:
        out = Path(tmp) / "rows.json"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.llm", "--variants", variant.name,
            "--rounds", str(rounds), "--child-rows", str(out),
        )  # fmt: skip
        if await proc.wait() != 0:
            raise RuntimeError(f"{variant.name}: the child process failed")
        rows: list[dict[str, Any]] = json.loads(out.read_text()) if out.is_file() else []
    if not rows:
        print(f"  {variant.name}: skipped (no llama.cpp build for this CPU in {CPU_BUILD})")
    return rows


async def child(names: Sequence[str], rounds: int, rows_out: Path) -> int:
    if cpubuild.use(CPU_BUILD) is None:
        return 0  # nothing written: the parent reports the variant skipped
    spec = load_agent_spec(AGENT)
    other = other_agent(spec)
    rows = [summary(await run_variant(v, spec, other, rounds)) for v in VARIANTS
            if v.name in names]  # fmt: skip
    await asyncio.to_thread(rows_out.write_text, json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
