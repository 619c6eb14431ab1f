"""A real OTLP/gRPC trace receiver for tests and the dev stack.

``python -m trunkline.telemetry.sink --port 4317 --out spans.jsonl`` runs it stand-alone;
in tests, :class:`OtlpSink` keeps what it received in memory as :class:`SpanRecord`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from grpc import aio
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

log = logging.getLogger(__name__)

AttrValue = str | bool | int | float | list[Any] | None


@dataclass(frozen=True)
class SpanRecord:
    """One received span. Ids are lower-case hex; ``parent_span_id`` is ``""`` for a root."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    service_name: str
    kind: int
    attributes: Mapping[str, AttrValue]
    start_ns: int
    end_ns: int
    status_code: int

    def to_json(self) -> str:
        data = asdict(self)
        data["attributes"] = dict(self.attributes)
        return json.dumps(data)


def _value(value: AnyValue) -> AttrValue:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind in ("kvlist_value", "bytes_value"):
        return str(getattr(value, kind))
    result: AttrValue = getattr(value, kind)
    return result


def _attributes(items: Sequence[KeyValue]) -> dict[str, AttrValue]:
    return {item.key: _value(item.value) for item in items}


def records_from(request: trace_service_pb2.ExportTraceServiceRequest) -> list[SpanRecord]:
    """Flatten an OTLP export request into span records."""
    records: list[SpanRecord] = []
    for resource_spans in request.resource_spans:
        service = str(_attributes(resource_spans.resource.attributes).get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                records.append(
                    SpanRecord(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        service_name=service,
                        kind=span.kind,
                        attributes=_attributes(span.attributes),
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status_code=span.status.code,
                    )
                )
    return records


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: OtlpSink) -> None:
        self._sink = sink

    async def Export(  # noqa: N802 - the OTLP method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._sink.add(records_from(request))
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpSink:
    """An in-process OTLP/gRPC trace receiver on loopback. ``port=0`` picks a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, out: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.out = out
        self._spans: list[SpanRecord] = []
        self._changed = asyncio.Event()
        self._server: aio.Server | None = None

    @property
    def endpoint(self) -> str:
        """``host:port`` to give an OTLP exporter."""
        return f"{self.host}:{self.port}"

    @property
    def spans(self) -> list[SpanRecord]:
        return list(self._spans)

    async def start(self) -> None:
        server = aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _TraceService(self), server
        )
        self.port = server.add_insecure_port(f"{self.host}:{self.port}")
        if self.port == 0:
            raise RuntimeError(f"OTLP sink could not bind {self.host}")
        await server.start()
        self._server = server

    async def stop(self, grace: float | None = 1.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    def add(self, records: Sequence[SpanRecord]) -> None:
        self._spans.extend(records)
        if self.out is not None and records:
            with self.out.open("a", encoding="utf-8") as handle:
                handle.writelines(record.to_json() + "\n" for record in records)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def clear(self) -> None:
        self._spans.clear()

    async def wait_for(
        self,
        predicate: Callable[[list[SpanRecord]], bool],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[SpanRecord]:
        """Wait until ``predicate(spans)`` holds; return the spans. Raises TimeoutError."""
        async with asyncio.timeout(timeout):
            while not predicate(self.spans):
                await self._changed.wait()
        return self.spans

    async def wait_for_names(
        self,
        *names: str,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[SpanRecord]:
        """Wait until a span with each of ``names`` arrived."""
        return await self.wait_for(lambda spans: set(names) <= {s.name for s in spans}, timeout)


async def serve(host: str, port: int, out: Path | None) -> None:
    sink = OtlpSink(host, port, out)
    await sink.start()
    log.info("OTLP sink listening on %s", sink.endpoint)
    print(f"otlp sink listening on {sink.endpoint}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await sink.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Receive OTLP/gRPC traces, write JSON lines.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4317)
    parser.add_argument("--out", type=Path, default=None, help="append spans as JSON lines")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.out))


if __name__ == "__main__":
    main()
