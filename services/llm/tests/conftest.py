"""Shared fixtures of the llm tests: an in-process LanguageModel server, llama.cpp's own
OpenAI-compatible server (a real peer for the ``openai`` backend)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import grpc
import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider

from trunkline.config import ServiceSettings
from trunkline.llm.backends import LlmMetrics
from trunkline.llm.backends.llamacpp import smollm2_model_path
from trunkline.llm.server import LANGUAGE_MODEL, LanguageModelService, register
from trunkline.runtime import ServiceShell
from trunkline.telemetry.prometheus import PrometheusReader, registry_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_server(servicer: LanguageModelService) -> tuple[ServiceShell, str]:
    """A real grpc.aio server through the runtime shell (guard, health) on a free port."""
    shell = ServiceShell(
        ServiceSettings(grpc_port=0, drain_seconds=1.0),
        services=[LANGUAGE_MODEL],
        ready=servicer.ready,
        recheck_seconds=0.05,
    )
    port = await shell.start(lambda server: register(server, servicer))
    return shell, f"127.0.0.1:{port}"


class Scrape:
    """:class:`LlmMetrics` on their own MeterProvider, read as the service's ``/metrics`` is."""

    def __init__(self) -> None:
        reader = PrometheusReader()
        self.provider = MeterProvider(metric_readers=[reader])
        self.registry = registry_for(reader)
        self.metrics = LlmMetrics(self.provider.get_meter("test"))

    def sample(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


@pytest.fixture
def scrape() -> Iterator[Scrape]:
    recorded = Scrape()
    yield recorded
    recorded.provider.shutdown()


StartLlm = Callable[[LanguageModelService], Awaitable[grpc.aio.Channel]]


@pytest.fixture
async def start_llm() -> AsyncIterator[StartLlm]:
    """Serve a servicer in process; returns a channel to it. Everything stops at teardown."""
    opened: list[tuple[ServiceShell, grpc.aio.Channel]] = []

    async def start(servicer: LanguageModelService) -> grpc.aio.Channel:
        shell, addr = await start_server(servicer)
        channel = grpc.aio.insecure_channel(addr)
        opened.append((shell, channel))
        return channel

    yield start
    for shell, channel in opened:
        await channel.close()
        await shell.shutdown()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` with SmolLM2 on a free port; yields its ``/v1`` base URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(smollm2_model_path()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            "2",
            "--chat_format",
            "chatml-function-calling",
            "--model_alias",
            "smollm2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("llama_cpp.server did not come up in 60 s")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
