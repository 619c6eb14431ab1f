"""Jaeger all-in-one (Jaeger v2, built by ``make install``) on loopback: OTLP/gRPC in, the query
API out, traces kept in memory.

Only the ports it is given are opened (OTLP/gRPC, query HTTP, query gRPC): none of the stock
all-in-one's fixed ports (4318, 14250, 5778, 8888, ...), so several stacks and tests can run
side by side. With ``forward_to`` every span received is also exported, unchanged, over
OTLP/gRPC to that endpoint (the local stack forwards to its OTLP sink, which writes
``spans.jsonl``).

The query API answers at ``{url}/api/traces/<trace id>`` and
``{url}/api/traces?service=gateway&tags={"call.id":"..."}``. The web UI at ``{url}/trace/<id>``
is Jaeger's placeholder page in this build: the UI's assets are built from the jaeger-ui
repository and are not in the Go module (a release image of Jaeger has them).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from trunkline.devservers.gotools import find_tool
from trunkline.devservers.ports import LOOPBACK, free_port, port_open
from trunkline.devservers.process import ManagedServer

MAX_TRACES = 100_000


def jaeger_config(
    *,
    host: str,
    otlp_port: int,
    query_port: int,
    query_grpc_port: int,
    forward_to: str | None = None,
) -> dict[str, Any]:
    """The collector configuration (YAML is a superset of JSON: written as JSON)."""
    exporters: dict[str, Any] = {"jaeger_storage_exporter": {"trace_storage": "memstore"}}
    if forward_to is not None:
        exporters["otlp/forward"] = {
            "endpoint": forward_to,
            "tls": {"insecure": True},
            "compression": "none",
        }
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {
                "traces": {"receivers": ["otlp"], "processors": [], "exporters": list(exporters)}
            },
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
        },
        "extensions": {
            "jaeger_storage": {"backends": {"memstore": {"memory": {"max_traces": MAX_TRACES}}}},
            "jaeger_query": {
                "storage": {"traces": "memstore"},
                "http": {"endpoint": f"{host}:{query_port}"},
                "grpc": {"endpoint": f"{host}:{query_grpc_port}"},
            },
        },
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"{host}:{otlp_port}"}}}},
        "exporters": exporters,
    }


def query_ready(url: str, timeout: float = 1.0) -> bool:
    """True when Jaeger's query API answers ``GET {url}/api/services`` with JSON."""
    try:
        with urllib.request.urlopen(f"{url}/api/services", timeout=timeout) as response:
            json.loads(response.read())
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


class JaegerServer(ManagedServer):
    """``jaeger --config <file>`` as a child process. ``url`` is the query API's base URL,
    ``otlp_endpoint`` the ``host:port`` services export OTLP/gRPC to."""

    def __init__(
        self,
        *,
        otlp_port: int | None = None,
        query_port: int | None = None,
        query_grpc_port: int | None = None,
        forward_to: str | None = None,
        run_dir: Path | None = None,
        binary: Path | None = None,
        host: str = LOOPBACK,
        name: str = "jaeger",
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        super().__init__(
            name=name,
            host=host,
            port=query_port if query_port is not None else free_port(host),
            run_dir=run_dir,
            start_timeout=start_timeout,
            stop_timeout=stop_timeout,
        )
        self.otlp_port = otlp_port if otlp_port is not None else free_port(host)
        self.query_grpc_port = query_grpc_port if query_grpc_port is not None else free_port(host)
        self.forward_to = forward_to
        self.binary = binary if binary is not None else find_tool("jaeger")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def otlp_endpoint(self) -> str:
        return f"{self.host}:{self.otlp_port}"

    @property
    def config_path(self) -> Path:
        return (self.run_dir or self._tmp) / f"{self.name}.yaml"

    def command(self) -> list[str]:
        config = jaeger_config(
            host=self.host,
            otlp_port=self.otlp_port,
            query_port=self.port,
            query_grpc_port=self.query_grpc_port,
            forward_to=self.forward_to,
        )
        self.config_path.write_text(json.dumps(config, indent=2) + "\n")
        return [str(self.binary), "--config", str(self.config_path)]

    def healthy(self) -> bool:
        return port_open(self.host, self.otlp_port) and query_ready(self.url)
