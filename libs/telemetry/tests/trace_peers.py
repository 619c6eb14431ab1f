"""Peer processes for test_trace_across_processes.py (run as scripts, not collected).

    python trace_peers.py relay OTLP NATS_URL SUBJECT      gRPC bidi server; publishes to NATS
    python trace_peers.py listen OTLP NATS_URL SUBJECT     NATS subscriber; exits after one message

Each prints ``READY [port]`` once it can be called and exports its spans to the OTLP sink.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator

import grpc
from google.protobuf.wrappers_pb2 import StringValue
from grpc import aio

from trunkline.bus import Bus, BusMessage
from trunkline.telemetry import setup_telemetry

RELAY_SERVICE = "test.Relay"


async def relay(otlp: str, nats_url: str, subject: str) -> None:
    telemetry = setup_telemetry("peer-relay", otlp, 0)
    bus = await Bus.connect(nats_url, name="relay", tracer_provider=telemetry.tracer_provider)

    async def chat(
        requests: AsyncIterator[bytes], context: aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        async for request in requests:
            await bus.publish(subject, StringValue(value=request.decode()))
            yield b"relayed:" + request

    server = aio.server(interceptors=telemetry.server_interceptors())
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                RELAY_SERVICE, {"Chat": grpc.stream_stream_rpc_method_handler(chat)}
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"READY {port}", flush=True)
    await stop.wait()
    await server.stop(1)
    await bus.close()
    telemetry.shutdown()


async def listen(otlp: str, nats_url: str, subject: str) -> None:
    telemetry = setup_telemetry("peer-listener", otlp, 0)
    tracer = telemetry.tracer("peer")
    bus = await Bus.connect(nats_url, name="listener", tracer_provider=telemetry.tracer_provider)
    done = asyncio.Event()

    async def handle(msg: BusMessage) -> None:
        with tracer.start_as_current_span("peer.handle") as span:
            span.set_attribute("text", msg.decode(StringValue).value)
        done.set()

    await bus.subscribe(subject, handle)
    await bus.client.flush()
    print("READY", flush=True)
    await done.wait()
    await bus.close()
    telemetry.shutdown()
    print("GOT", flush=True)


if __name__ == "__main__":
    mode, otlp_endpoint, url, subject_name = sys.argv[1:5]
    asyncio.run({"relay": relay, "listen": listen}[mode](otlp_endpoint, url, subject_name))
