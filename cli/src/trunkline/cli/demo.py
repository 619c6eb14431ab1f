"""``trunkline demo``: the main job end to end on the local stack.

Brings the stack up (or reuses the one that is up), loads the sample agent's knowledge for the
local tenant, then places one simulated phone call through the gateway, STT, context, LLM and
TTS: the caller's lines (``agents/<agent>/demo-call.yaml``) are spoken in real time over the
Twilio media stream, one of them barging in on the agent. Prints the conversation as the
``turn.completed`` events on NATS tell it, the per-turn latencies measured by the caller and the
stage timings measured by the gateway; writes both recordings and the JSON result under
``<run dir>/demo/``. The stack is left up for a second look: ``make down`` stops it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from google.protobuf.json_format import MessageToDict

from trunkline.bus import Bus
from trunkline.cli import stack, traces
from trunkline.cli.caller import (
    CallIdentity,
    CallOptions,
    CallResult,
    SimulatedCaller,
    direct_target,
    latency_table,
    load_scenario,
    prepare_script,
)
from trunkline.cli.knowledge import ingest
from trunkline.cli.record import StackRecord, load
from trunkline.cli.settings import StackSettings
from trunkline.cli.tenants import read_tenant
from trunkline.cli.turns import STAGES, HeardTurn, TurnFeed

DEMO_AGENT = "acme-dental"
DEMO_OPTIONS = CallOptions(reply_quiet_ms=4000.0, reply_timeout_s=30.0)
"""A reply is over after 4 s without agent speech: on a busy 2-core machine a filler ("One
moment, please") can come first and the answer seconds later; both count as one reply."""
TRACED = {"gateway", "stt", "context", "llm", "tts"}
"""The services whose spans make a call's trace."""
SCENARIO = "demo-call.yaml"
KNOWLEDGE = "knowledge"


@dataclass(frozen=True, slots=True)
class DemoCall:
    result: CallResult
    turns: list[HeardTurn]
    events: list[dict[str, Any]]


def component_url(record: StackRecord, name: str) -> str:
    component = record.get(name)
    if component is None:
        raise RuntimeError(f"the stack has no {name}")
    return component.url


def conversation(turns: list[HeardTurn]) -> str:
    """The call as the gateway recorded it: what STT heard, what the caller heard back, and
    where each reply came from (knowledge, llm, cache, deflection, goodbye, fallback…)."""
    lines = []
    for turn in turns:
        if turn.caller:
            lines.append(f"caller: {turn.caller}")
        cut = " [cut off by the caller]" if turn.truncated else ""
        source = (
            f" ({turn.source}{'' if turn.grounded else ', not grounded'})" if turn.source else ""
        )
        lines.append(f"agent : {turn.agent or '(nothing heard)'}{cut}{source}")
        if turn.truncated and turn.generated.strip() != turn.agent.strip():
            lines.append(f"        (generated: {turn.generated})")
    return "\n".join(lines)


def stage_table(turns: list[HeardTurn]) -> str:
    """Per-turn stage timings (ms) measured by the gateway, greeting left out."""
    header = ("turn", *(title for _, title in STAGES))
    rows = [header]
    for i, turn in enumerate(t for t in turns if t.caller):
        cells = [str(i)]
        for stage, _ in STAGES:
            value = turn.stages_ms.get(stage)
            cells.append("-" if value is None else f"{value:.0f}")
        rows.append(tuple(cells))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    out = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def grounding(events: list[dict[str, Any]]) -> str:
    """Per caller turn: the live records and knowledge the context cited, and the tool calls
    (from the ``turn.completed`` events, as JSON dicts)."""
    lines = []
    caller_turns = [e for e in events if e.get("callerTranscript")]
    for i, event in enumerate(caller_turns):
        citations = [c.get("id", "") for c in event.get("citations", [])]
        live = [c for c in citations if ":" in c and "#" not in c]
        lines.append(f"turn {i}: context cited {', '.join(citations) or 'nothing'}")
        if live:
            lines.append(f"        live records (set algebra): {', '.join(live)}")
        for tool in event.get("toolCalls", []):
            call = tool.get("call", {})
            status = str(tool.get("status", "")).removeprefix("TOOL_CALL_STATUS_").lower()
            lines.append(
                f"        tool {call.get('name')}({call.get('argumentsJson', '')}) -> {status}: "
                f"{tool.get('resultJson', '')[:160]}"
            )
    return "\n".join(lines) or "(no caller turns)"


async def place_call(
    record: StackRecord,
    tenant_name: str,
    agent: str,
    scenario: Path,
    *,
    options: CallOptions | None = None,
    on_feed: Callable[[tuple[TurnFeed, str]], None] | None = None,
) -> tuple[DemoCall, SimulatedCaller]:
    """One simulated call on the running stack, with the agent's turns read from NATS.
    ``on_feed`` gets the live turn feed and the call id as the call starts (to act mid-call)."""
    tenant = read_tenant(Path(record.tenants_file), tenant_name)
    script = await prepare_script(
        load_scenario(scenario), tts_addr=component_url(record, "tts"), tenant=tenant.name
    )
    bus = await Bus.connect(component_url(record, "nats"), name="trunkline-demo")
    feed = TurnFeed(bus, tenant.name)
    try:
        await feed.start()
        identity = CallIdentity()
        if on_feed is not None:
            on_feed((feed, identity.call_sid))
        target = direct_target(
            record.media_url,
            identity,
            tenant=tenant.name,
            agent=agent,
            stream_secret=tenant.stream_secret,
        )
        caller = SimulatedCaller(target, identity, options, agent_text=feed.agent_text)
        result = await caller.run(script)
        await bus.client.flush()
        events = [MessageToDict(e) for e in feed.events.get(identity.call_sid, [])]
        return DemoCall(result, feed.turns(identity.call_sid), events), caller
    finally:
        await feed.stop()
        await bus.close()


def call_trace(record: StackRecord, call: DemoCall) -> str:
    """Where the call's trace is in Jaeger (waiting for the services' last batches)."""
    jaeger = record.get("jaeger")
    if jaeger is None:
        return "Jaeger is not part of this stack (not built: `make install`); see spans.jsonl"
    sid = call.result.call_sid
    try:
        trace_id, spans = traces.wait_for_call_trace(jaeger.url, sid, services=TRACED)
    except traces.TraceQueryError as exc:
        return f"Jaeger: {exc}"
    return (
        f"Jaeger trace of call {sid}: {len(spans)} spans from "
        f"{', '.join(sorted({s['service_name'] for s in spans}))}\n"
        f"  {traces.trace_api_url(jaeger.url, trace_id)}  (query API, JSON)\n"
        f"  {traces.trace_url(jaeger.url, trace_id)}  (UI page: this Jaeger build serves a "
        "placeholder there, its UI assets are not in the Go module)"
    )


async def _demo(record: StackRecord, settings: StackSettings, out: TextIO) -> int:
    agents_dir = Path(record.agents_dir)
    knowledge = agents_dir / DEMO_AGENT / KNOWLEDGE
    summary = await ingest(component_url(record, "context"), settings.tenant, knowledge)
    print(
        f"knowledge: {summary.documents} documents from {knowledge} for tenant "
        f"{settings.tenant} ({summary.chunks_added} chunks added, "
        f"{summary.chunks_unchanged} unchanged)",
        file=out,
    )
    for failure in summary.failed:
        print(f"  failed: {failure}", file=out)
    print(f"calling agent {DEMO_AGENT} at {record.media_url} ...", file=out, flush=True)
    call, caller = await place_call(
        record, settings.tenant, DEMO_AGENT, agents_dir / DEMO_AGENT / SCENARIO,
        options=DEMO_OPTIONS,
    )  # fmt: skip
    folder = Path(record.run_dir) / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    caller.write_recordings(folder / "agent.wav", folder / "call.wav")
    data = {**call.result.to_dict(), "turn_events": call.events}
    (folder / "call.json").write_text(json.dumps(data, indent=2))
    print("\n== conversation (turn.completed events)", file=out)
    print(conversation(call.turns), file=out)
    print("\n== grounding: context citations and tool calls per caller turn", file=out)
    print(grounding(call.events), file=out)
    print("\n== latency per caller turn (measured by the caller)", file=out)
    print(latency_table(call.result), file=out)
    print("\n== stages per turn, ms (measured by the gateway)", file=out)
    print(stage_table(call.turns), file=out)
    print(f"\n== trace\n{await asyncio.to_thread(call_trace, record, call)}", file=out)
    print(
        f"\nrecordings and JSON: {folder}/{{agent.wav,call.wav,call.json}}\n"
        f"spans: {record.run_dir}/spans.jsonl\n"
        "the stack is still up: `make down` (trunkline stack down) stops it",
        file=out,
    )
    return 0 if ended_normally(call) else 1


def ended_normally(call: DemoCall) -> bool:
    """The caller hung up, or the agent did once its goodbye had played."""
    if call.result.ended_by == "caller":
        return True
    said_goodbye = bool(call.turns) and call.turns[-1].hang_up
    return said_goodbye and call.result.ended_by.startswith("server closed the stream")


def run(settings: StackSettings, out: TextIO = sys.stdout) -> int:
    """``trunkline demo``; returns the exit code."""
    code = stack.up(settings, out)
    if code != 0:
        return code
    record = load(settings.run_dir.resolve())
    if record is None or not record.media_url:
        print("the stack record has no media stream URL: run `make down` and retry", file=out)
        return 1
    return asyncio.run(_demo(record, settings, out))
