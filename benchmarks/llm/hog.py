"""``python -m benchmarks.llm --hog``: the embedded LLM with a CPU hog on one core vs quiet.

For each setting (threads, ``GOMP_SPINCOUNT``, ``OMP_WAIT_POLICY``) a child process loads
llama.cpp with that environment (the OpenMP runtime reads it once, when the library loads),
warms the sample agent's prompt up and then runs the same multi-turn call round after round,
alternating quiet / hog / quiet / hog, so that both halves see the same background (other jobs
on the machine). The hog is ``python -c 'while True: pass'`` pinned to core 0 with ``taskset``;
this module starts it before a hog round and stops it after. Per setting and condition: TTFT
p50/p95 over the turns and decode speed (tokens/s after the first token), then the ratio
hog/quiet of the p95 — the issue's target is ≤ 2.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HOG_CORE = 0
HOG_CODE = "while True: pass"


@dataclass(frozen=True, slots=True)
class Setting:
    """``threads`` generate tokens; ``threads_batch`` evaluate prompts; ``first_threads``
    generate the first ``first_tokens`` tokens (``LLM_FIRST_TOKENS_THREADS``; None: as the
    stack sets it, ``threads_batch``)."""

    name: str
    threads: int
    threads_batch: int
    spin: str  # GOMP_SPINCOUNT
    wait_policy: str = ""  # OMP_WAIT_POLICY; "" leaves it unset
    first_tokens: int = 8
    first_threads: int | None = None


SETTINGS = (
    Setting("1t", 1, 1, "20000"),
    Setting("1g2b-passive", 1, 2, "0", "PASSIVE"),
    Setting("1g2b-spin2k", 1, 2, "2000"),
    Setting("1g2b-spin200", 1, 2, "200"),
    Setting("1g2b-spin20k", 1, 2, "20000"),  # the stack before issue 15
    Setting("2t-spin20k", 2, 2, "20000"),
    Setting("1g2b1f-passive", 1, 2, "0", "PASSIVE", first_threads=1),
    Setting("1g2b1f-spin20k", 1, 2, "20000", first_threads=1),
)
TURNS_PER_ROUND = 3
REPLY_TOKENS = 24


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


@contextmanager
def hog(core: int = HOG_CORE) -> Iterator[None]:
    """A busy loop pinned to ``core`` while the block runs (unpinned where taskset is missing)."""
    taskset = shutil.which("taskset")
    argv = [sys.executable, "-c", HOG_CODE]
    if taskset is not None:
        argv = [taskset, "-c", str(core), *argv]
    proc = subprocess.Popen(argv)
    try:
        time.sleep(0.2)  # let it reach its loop
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def stats(ttft: Sequence[float], rate: Sequence[float]) -> dict[str, Any]:
    return {
        "turns": len(ttft),
        "ttft_ms_p50": round(pct(ttft, 0.5), 1),
        "ttft_ms_p95": round(pct(ttft, 0.95), 1),
        "decode_tok_s_p50": round(pct(rate, 0.5), 1),
        "decode_tok_s_p5": round(pct(rate, 0.05), 1),
    }


async def child(setting: Setting, rounds: int, rows_out: Path, *, hog_first: bool = False) -> int:
    """One setting in this process: an untimed call (first-call costs), then quiet and hog
    rounds of the sample call alternating (``hog_first``: starting with the hog)."""
    from benchmarks.llm.__main__ import AGENT, TURNS, request  # noqa: PLC0415
    from trunkline.agents import load_agent_spec  # noqa: PLC0415 - after the env is set
    from trunkline.llm.backends import CallPolicy  # noqa: PLC0415
    from trunkline.llm.backends.llamacpp import (  # noqa: PLC0415
        LlamaCppBackend,
        LlamaCppConfig,
        smollm2_model_path,
    )
    from trunkline.llm.core import ChatMessage, Done, TextDelta  # noqa: PLC0415
    from trunkline.llm.warmup import warm_up  # noqa: PLC0415

    spec = load_agent_spec(AGENT)
    config = LlamaCppConfig(
        smollm2_model_path(),
        n_threads=setting.threads,
        n_threads_batch=setting.threads_batch,
        quantize="q4_0",  # the service default
        first_tokens=setting.first_tokens,
        first_tokens_threads=setting.first_threads or setting.threads_batch,
    )
    policy = CallPolicy(first_token_timeout_s=300.0, total_timeout_s=600.0, retries=0)
    llama = LlamaCppBackend(config, policy=policy)
    await llama.start()
    samples: dict[str, tuple[list[float], list[float]]] = {"quiet": ([], []), "hog": ([], [])}
    try:
        await warm_up(llama, [spec])
        user, facts = TURNS[0]
        greeting = [ChatMessage("assistant", spec.greeting)]
        async for _ in llama.generate(request(spec, llama, "stable_prefix", greeting, user,
                                              facts=facts, max_tokens=REPLY_TOKENS)):  # fmt: skip
            pass
        for r in range(rounds):
            condition = "hog" if (r % 2 == 0) == hog_first else "quiet"
            ttft, rate = samples[condition]
            history = [ChatMessage("assistant", spec.greeting)]
            with hog() if condition == "hog" else _nothing():
                for user, facts in TURNS[:TURNS_PER_ROUND]:
                    req = request(
                        spec,
                        llama,
                        "stable_prefix",
                        history,
                        user,
                        facts=facts,
                        max_tokens=REPLY_TOKENS,
                    )
                    text: list[str] = []
                    done: Done | None = None
                    async for event in llama.generate(req):
                        if isinstance(event, TextDelta):
                            text.append(event.text)
                        elif isinstance(event, Done):
                            done = event
                    if done is None or done.ttft_s is None or done.usage is None:
                        raise RuntimeError(f"{setting.name}: a turn ended without TTFT")
                    ttft.append(done.ttft_s * 1000)
                    tokens = done.usage.completion_tokens
                    if tokens > 1 and done.duration_s > done.ttft_s:
                        rate.append((tokens - 1) / (done.duration_s - done.ttft_s))
                    history += [ChatMessage("user", user), ChatMessage("assistant", "".join(text))]
            print(
                f"  {setting.name} round {r + 1} ({condition}): TTFT p50 "
                f"{pct(ttft[-TURNS_PER_ROUND:], 0.5):.0f} ms, load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    finally:
        await llama.aclose()
    raw = {c: {"ttft_ms": t, "decode_tok_s": r} for c, (t, r) in samples.items()}
    await asyncio.to_thread(rows_out.write_text, json.dumps(raw))
    return 0


def summarize(setting: Setting, raw: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    row: dict[str, Any] = {**asdict(setting)}
    for condition, values in raw.items():
        row[condition] = stats(values["ttft_ms"], values["decode_tok_s"])
    quiet, busy = row["quiet"], row["hog"]
    row["p95_ratio"] = round(busy["ttft_ms_p95"] / quiet["ttft_ms_p95"], 2)
    row["p50_ratio"] = round(busy["ttft_ms_p50"] / quiet["ttft_ms_p50"], 2)
    row["decode_ratio"] = round(busy["decode_tok_s_p50"] / quiet["decode_tok_s_p50"], 2)
    row["samples"] = raw
    return row


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def run_setting(
    setting: Setting, rounds: int, *, hog_first: bool = False
) -> dict[str, dict[str, list[float]]]:
    env = dict(os.environ, GOMP_SPINCOUNT=setting.spin)
    env.pop("OMP_WAIT_POLICY", None)
    if setting.wait_policy:
        env["OMP_WAIT_POLICY"] = setting.wait_policy
    with tempfile.TemporaryDirectory(prefix="bench-llm-hog-") as tmp:
        out = Path(tmp) / "row.json"
        argv = [sys.executable, "-m", "benchmarks.llm", "--hog-child", setting.name,
                "--hog-rounds", str(rounds), "--child-rows", str(out)]  # fmt: skip
        if hog_first:
            argv.append("--hog-first")
        if subprocess.run(argv, env=env, check=False).returncode != 0:
            raise RuntimeError(f"{setting.name}: the child process failed")
        raw: dict[str, dict[str, list[float]]] = json.loads(out.read_text())
    return raw


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    head = (
        f"{'setting':<14} {'quiet TTFT p50/p95':>19} {'hog TTFT p50/p95':>17} {'p95 x':>6} "
        f"{'decode tok/s quiet/hog':>23}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        q, h = r["quiet"], r["hog"]
        print(
            f"{r['name']:<14} {q['ttft_ms_p50']:>8.0f}/{q['ttft_ms_p95']:<6.0f}ms "
            f"{h['ttft_ms_p50']:>7.0f}/{h['ttft_ms_p95']:<6.0f}ms {r['p95_ratio']:>6.2f} "
            f"{q['decode_tok_s_p50']:>13.0f}/{h['decode_tok_s_p50']:<5.0f}"
        )


def main(names: Sequence[str], rounds: int, out: Path, passes: int = 1) -> int:
    """``passes`` times over the settings, ``rounds`` (quiet, hog, ...) per setting each time,
    so that the settings, too, see the same background."""
    chosen = [s for s in SETTINGS if not names or s.name in names]
    unknown = set(names) - {s.name for s in SETTINGS}
    if unknown:
        known = ", ".join(s.name for s in SETTINGS)
        raise SystemExit(f"unknown --hog-settings {sorted(unknown)}; known: {known}")
    load_before = os.getloadavg()
    merged: dict[str, dict[str, dict[str, list[float]]]] = {}
    for p in range(passes):
        for setting in chosen:
            print(f"running {setting.name} (pass {p + 1}/{passes}) ...", flush=True)
            # odd passes start with the hog: neither condition always comes first
            for condition, values in run_setting(setting, rounds, hog_first=p % 2 == 1).items():
                into = merged.setdefault(setting.name, {}).setdefault(condition, {})
                for key, samples in values.items():
                    into.setdefault(key, []).extend(samples)
    rows = [summarize(s, merged[s.name]) for s in chosen]
    load_after = os.getloadavg()
    print(f"\n{cpu_model()}, {os.cpu_count()} cores; hog on core {HOG_CORE}")
    print(f"load average before {load_before}, after {load_after}")
    print_table(rows)
    report = {
        "benchmark": "llm-hog",
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "hog": f"taskset -c {HOG_CORE} python -c '{HOG_CODE}'",
        "rounds": rounds,
        "passes": passes,
        "turns_per_round": TURNS_PER_ROUND,
        "reply_tokens": REPLY_TOKENS,
        "order": "per pass, each setting in turn: an untimed call, then quiet/hog alternating "
        "per round (odd passes start with the hog)",
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "settings": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def setting_named(name: str) -> Setting:
    for setting in SETTINGS:
        if setting.name == name:
            return setting
    raise SystemExit(f"unknown setting {name!r}")
