"""``python -m trunkline.ledger`` as the stack runs it: SERVING, events in, rows out, SIGTERM; a
malformed price table stops it at start with the file and line."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trunkline.bus import Bus
from trunkline.bus.streams import EVENTS, event_subject
from trunkline.devservers import NatsServer, free_port
from trunkline.ledger.models import CallRow
from trunkline.ledger.store import make_engine
from trunkline.proto.common.v1 import call_pb2, usage_pb2
from trunkline.proto.events.v1 import events_pb2
from trunkline.runtime import wait_healthy

from .conftest import ROOT

pytestmark = pytest.mark.integration


def ledger_env(tmp_path: Path, nats_url: str, prices: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "LEDGER_GRPC_PORT": str(port),
        "LEDGER_NATS_URL": nats_url,
        "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "LEDGER_PRICES_DIR": str(prices),
        "LEDGER_AGENTS_DIR": str(ROOT / "agents"),
        "LEDGER_LOG_JSON": "false",
        "LEDGER_DRAIN_SECONDS": "1",
    }


def test_a_malformed_price_table_stops_the_process_with_file_and_line(tmp_path: Path) -> None:
    prices = tmp_path / "prices"
    prices.mkdir()
    bad = prices / "acme.yaml"
    bad.write_text((ROOT / "prices" / "acme.yaml").read_text().replace("0.0085", "8.5 cents"))
    done = subprocess.run(
        [sys.executable, "-m", "trunkline.ledger"],
        env=ledger_env(tmp_path, "nats://127.0.0.1:1", prices, free_port()),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "ledger: bad price table:",
        f"{bad}:19: versions.0.telephony.per_minute: Input should be a valid decimal",
    ]


async def test_the_ledger_process_writes_what_the_gateway_publishes(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    port = free_port()
    env = ledger_env(tmp_path, nats_server.url, ROOT / "prices", port)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "trunkline.ledger", env=env
    )
    bus = await Bus.connect(nats_server.url, name="gateway-like")
    call_id = f"proc-{time.time_ns()}"
    try:
        await wait_healthy(f"127.0.0.1:{port}", timeout=60)
        await bus.ensure_stream(EVENTS)
        context = call_pb2.CallContext(
            tenant_id="acme", call_id=call_id,
            agent=call_pb2.AgentRef(name="acme-dental", version="1.0.0"),
        )  # fmt: skip
        turn = events_pb2.TurnCompleted(
            event_id=f"{call_id}-t0", context=context,
            usage=usage_pb2.Usage(input_tokens=500, output_tokens=20, audio_in_seconds=2.5),
            reply_source=events_pb2.REPLY_SOURCE_LLM,
        )  # fmt: skip
        turn.tool_calls.add(
            status=events_pb2.TOOL_CALL_STATUS_SUCCEEDED
        ).call.name = "book_appointment"
        ended = events_pb2.CallEnded(
            event_id=f"{call_id}-end", context=context, reason=events_pb2.END_REASON_CALLER_HANGUP
        )
        ended.duration.FromSeconds(40)
        await bus.js_publish(event_subject("turn", "acme", call_id), turn)
        await bus.js_publish(event_subject("call_ended", "acme", call_id), ended)
        engine = make_engine(env["LEDGER_DATABASE_URL"])
        deadline = time.monotonic() + 30
        call = None
        while time.monotonic() < deadline:
            with Session(engine) as session:
                call = session.get(CallRow, ("acme", call_id))
                if call is not None and call.outcome is not None:
                    break
            await asyncio.sleep(0.1)
        assert call is not None
        # the spec's qualified outcome (agents/acme-dental.yaml): book_appointment succeeded
        assert (call.outcome, call.qualified) == ("resolved", True)
        with Session(engine) as session:
            assert session.scalar(select(func.count()).select_from(CallRow)) == 1
        engine.dispose()
    finally:
        await bus.close()
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
    assert code == 0
