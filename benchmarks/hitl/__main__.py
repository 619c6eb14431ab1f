"""``python -m benchmarks.hitl``: approval round trip without the human's own time.

A real NATS server and a real hitl process (``python -m trunkline.hitl``); the benchmark plays
the gateway over gRPC and the operator console through a second ticket queue on the same
JetStream bucket (the console calls the queue in-process, in its own process here):

    gateway RequestApproval ──▶ hitl writes the ticket ──▶ console sees it (KV watch)
    console approves (compare-and-set) ──▶ hitl's WaitDecision stream ──▶ gateway sees DECIDED

Per approval: the RequestApproval RPC, request -> the console sees the ticket, the approve call,
approve -> the gateway's WaitDecision sees DECIDED, and the round trip (the sum: everything
but the operator's own time, which is zero here). The same for an escalation accepted by an
operator (accept -> the gateway sees TAKEN_OVER). Sequential, then 10 in flight at once.

Prints a table and writes ``benchmarks/results/hitl.json`` with the CPU and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from trunkline.bus import Bus
from trunkline.bus.tasks import stop
from trunkline.devservers import NatsServer, free_port, start_on_free_port
from trunkline.hitl.core.tickets import State, Ticket
from trunkline.hitl.queue import TicketQueue
from trunkline.hitl.store import JetStreamTicketStore
from trunkline.proto.common.v1 import call_pb2, handoff_pb2, tool_pb2, transcript_pb2
from trunkline.proto.hitl.v1 import hitl_pb2, hitl_pb2_grpc
from trunkline.runtime import wait_healthy

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "hitl.json"
TARGET_MS = 100.0
HUMAN_LOOP = "trunkline.hitl.v1.HumanLoop"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


class Seen:
    """The console's view: when each ticket id first appeared in its update feed."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.waiters: dict[str, asyncio.Future[float]] = {}

    def wait(self, ticket_id: str) -> asyncio.Future[float]:
        future = self.waiters.setdefault(ticket_id, asyncio.get_running_loop().create_future())
        if ticket_id in self.at and not future.done():
            future.set_result(self.at[ticket_id])
        return future

    def saw(self, ticket_id: str, at: float) -> None:
        if ticket_id in self.at:
            return
        self.at[ticket_id] = at
        future = self.waiters.get(ticket_id)
        if future is not None and not future.done():
            future.set_result(at)


async def watch_console(tickets: AsyncIterator[Ticket], seen: Seen) -> None:
    async for ticket in tickets:
        if ticket.state is State.QUEUED:
            seen.saw(ticket.ticket_id, time.perf_counter())


Leg = dict[str, float]


async def one_approval(stub: Any, console: TicketQueue, seen: Seen, tenant: str) -> Leg:
    context = call_pb2.CallContext(tenant_id=tenant, call_id=f"c-{uuid.uuid4().hex[:8]}")
    t0 = time.perf_counter()
    reply = await stub.RequestApproval(
        hitl_pb2.RequestApprovalRequest(
            context=context,
            approval=hitl_pb2.Approval(
                tool_call=tool_pb2.ToolCall(
                    id="tc", name="issue_refund", arguments_json='{"amount": 40}'
                ),
                risk_level=tool_pb2.RISK_LEVEL_HIGH,
                justification="double charge",
                transcript=[
                    transcript_pb2.TranscriptEntry(
                        speaker=transcript_pb2.SPEAKER_CALLER, text="I was charged twice."
                    )
                ],
            ),
        )
    )
    t1 = time.perf_counter()
    ticket_id = reply.ticket.ticket_id
    follow = stub.WaitDecision(hitl_pb2.WaitDecisionRequest(context=context, ticket_id=ticket_id))
    first = await follow.read()
    assert first.ticket.state == hitl_pb2.TICKET_STATE_QUEUED
    visible = await seen.wait(ticket_id)
    t2 = time.perf_counter()
    await console.approve(tenant, ticket_id, "op-bench", arguments_json='{"amount": 20}')
    t3 = time.perf_counter()
    decided = await follow.read()
    t4 = time.perf_counter()
    assert decided.ticket.decision.outcome == handoff_pb2.DECISION_OUTCOME_APPROVED
    follow.cancel()
    request_to_console = visible - t0
    decide_to_gateway = t4 - t2
    return {
        "request_rpc_ms": (t1 - t0) * 1e3,
        "request_to_console_ms": request_to_console * 1e3,
        "approve_call_ms": (t3 - t2) * 1e3,
        "approve_to_gateway_ms": decide_to_gateway * 1e3,
        "round_trip_ms": (request_to_console + decide_to_gateway) * 1e3,
    }


async def one_handoff(stub: Any, console: TicketQueue, seen: Seen, tenant: str) -> Leg:
    context = call_pb2.CallContext(tenant_id=tenant, call_id=f"c-{uuid.uuid4().hex[:8]}")
    t0 = time.perf_counter()
    reply = await stub.Escalate(
        hitl_pb2.EscalateRequest(
            context=context,
            escalation=hitl_pb2.Escalation(
                reason=handoff_pb2.ESCALATION_REASON_CALLER_REQUEST,
                transcript=[
                    transcript_pb2.TranscriptEntry(
                        speaker=transcript_pb2.SPEAKER_CALLER,
                        text="This is the third time I am calling. I want a real person.",
                    )
                ],
            ),
        )
    )
    t1 = time.perf_counter()
    ticket_id = reply.ticket.ticket_id
    follow = stub.WaitDecision(hitl_pb2.WaitDecisionRequest(context=context, ticket_id=ticket_id))
    await follow.read()
    visible = await seen.wait(ticket_id)
    t2 = time.perf_counter()
    await console.accept(tenant, ticket_id, "op-bench")
    taken = await follow.read()
    t3 = time.perf_counter()
    assert taken.ticket.state == hitl_pb2.TICKET_STATE_TAKEN_OVER
    follow.cancel()
    return {
        "escalate_rpc_ms": (t1 - t0) * 1e3,
        "escalate_to_console_ms": (visible - t0) * 1e3,
        "accept_to_gateway_ms": (t3 - t2) * 1e3,
    }


def summary(samples: list[Leg]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key in samples[0]:
        values = sorted(s[key] for s in samples)
        out[key] = {
            "p50": statistics.median(values),
            "p95": values[min(len(values) - 1, round(0.95 * (len(values) - 1)))],
            "max": values[-1],
        }
    return out


async def run_mode(one: Callable[[], Awaitable[Leg]], count: int, in_flight: int) -> list[Leg]:
    for _ in range(5):  # warm-up
        await one()
    samples: list[Leg] = []
    gate = asyncio.Semaphore(in_flight)

    async def guarded() -> None:
        async with gate:
            samples.append(await one())

    await asyncio.gather(*(guarded() for _ in range(count)))
    return samples


async def bench(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        nats = start_on_free_port(lambda: NatsServer(store_dir=Path(tmp) / "js"))
        port = free_port()
        bucket = f"BENCH_{uuid.uuid4().hex[:8]}"
        env = {
            **os.environ,
            "HITL_GRPC_PORT": str(port),
            "HITL_NATS_URL": nats.url,
            "HITL_TICKETS_BUCKET": bucket,
            "HITL_LOG_LEVEL": "WARNING",
            "HITL_CONSOLE_ENABLED": "false",  # the benchmark plays the console itself
        }
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "trunkline.hitl", env=env)
        bus = await Bus.connect(nats.url, name="bench-console")
        console = TicketQueue(JetStreamTicketStore(bus, bucket=bucket))
        try:
            await wait_healthy(f"127.0.0.1:{port}", HUMAN_LOOP, timeout=60)
            await console.start()
            seen = Seen()
            runs: dict[str, Any] = {}
            async with (
                console.watch("bench") as tickets,
                grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
            ):
                watcher = asyncio.create_task(watch_console(tickets, seen))
                stub: Any = hitl_pb2_grpc.HumanLoopStub(channel)  # aio: awaitable calls
                for in_flight in (1, 10):
                    approvals = await run_mode(
                        lambda: one_approval(stub, console, seen, "bench"), count, in_flight
                    )
                    handoffs = await run_mode(
                        lambda: one_handoff(stub, console, seen, "bench"), count, in_flight
                    )
                    runs[f"in_flight_{in_flight}"] = {
                        "approvals": count,
                        "approval": summary(approvals),
                        "handoff": summary(handoffs),
                    }
                await stop(watcher)
        finally:
            await console.close()
            await bus.close()
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 15)
            nats.close()
    return runs


def print_table(runs: dict[str, Any]) -> None:
    print(
        f"\nhitl round trips (ms) on {cpu_model()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.2f}; target approval round trip <= {TARGET_MS:.0f} ms"
    )
    print(f"{'mode':<13}{'leg':<26}{'p50':>8}{'p95':>8}{'max':>8}")
    for mode, run in runs.items():
        for kind in ("approval", "handoff"):
            for leg, stats in run[kind].items():
                print(
                    f"{mode:<13}{leg:<26}{stats['p50']:>8.1f}{stats['p95']:>8.1f}"
                    f"{stats['max']:>8.1f}"
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="round trips per mode")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_before = os.getloadavg()
    runs = asyncio.run(bench(args.count))
    print_table(runs)
    p95 = runs["in_flight_1"]["approval"]["round_trip_ms"]["p95"]
    result = {
        "benchmark": "hitl",
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "target_round_trip_ms": TARGET_MS,
        "round_trip_p95_ms": p95,
        "meets_target": p95 <= TARGET_MS,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\napproval round trip p95 {p95:.1f} ms (target {TARGET_MS:.0f}); wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
