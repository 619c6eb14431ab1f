"""LiveKit's agent dispatch through a real LiveKit server (no webhooks configured): the gateway's
worker registers under its agent name, and a room is served when LiveKit sends it a job — an
explicit dispatch made with ``livekit-api`` (``AgentDispatchService.create_dispatch``) and a
caller token whose room configuration names the agent. The caller (a Python participant) hears
the greeting. A dispatch for a room of an unknown tenant is refused by the worker with the reason,
and nothing joins it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from livekit import api as livekit_api
from livekit.protocol import agent_dispatch, room
from opentelemetry.sdk.trace import TracerProvider

from trunkline.devservers.gotools import ToolMissingError, find_tool
from trunkline.devservers.livekit import LiveKitServer
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.fakes import (
    EnergyDetector,
    FakeContext,
    FakeLanguageModel,
    FakeSynthesizer,
    FakeTranscriber,
    RecordingSink,
)
from trunkline.gateway.livekit_dispatch import LiveKitDispatch
from trunkline.gateway.livekit_rooms import LiveKitKey, key_table
from trunkline.gateway.livekit_worker import LiveKitWorker, worker_url
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.transports.base import CallStart, Transport
from trunkline.gateway.transports.livekit_peer import LiveKitCaller
from trunkline.gateway.web import GatewayWeb, TenantAuth

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

AUTH = TenantAuth("twilio-token", "stream-secret", frozenset({"support"}))
AGENT_NAME = "trunkline-test"


class ToneSynthesizer(FakeSynthesizer):
    async def _synthesize(self, call: CallInfo, text: str):  # type: ignore[no-untyped-def]
        n = self.sample_rate // 50 * self.frames_per_word
        t = np.arange(n) / self.sample_rate
        word = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
        for _ in text.split():
            yield word


def test_the_worker_endpoint_of_a_livekit_url() -> None:
    assert worker_url("ws://127.0.0.1:7880") == "ws://127.0.0.1:7880/agent"
    assert worker_url("https://lk.example/base/") == "wss://lk.example/base/agent"


@pytest.fixture(scope="module")
def livekit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKitServer]:
    try:
        find_tool("livekit-server")
    except ToolMissingError as exc:
        pytest.fail(f"{exc} (make install builds it)")
    server = LiveKitServer(run_dir=tmp_path_factory.mktemp("livekit"))
    server.start()
    try:
        yield server
    finally:
        server.close()


@dataclass
class Rig:
    livekit: LiveKitServer
    dispatch: LiveKitDispatch
    worker: LiveKitWorker
    key: LiveKitKey


@pytest.fixture
async def rig(livekit: LiveKitServer) -> AsyncIterator[Rig]:
    clock = SystemClock()
    tracer = TracerProvider().get_tracer("test")

    async def run_call(start: CallStart, transport: Transport) -> None:
        env = PeerEnv(clock, tracer)
        await CallSession(
            CallInfo(start.call_id, start.tenant, start.agent, "v1"),
            transport,
            Peers(
                FakeTranscriber(env, lambda audio: "hello"),
                FakeContext(env),
                FakeLanguageModel(env, lambda text: "Sure."),
                ToneSynthesizer(env, 5, sample_rate=transport.out_rate),
            ),
            EnergyDetector(floor=300),
            RecordingSink(),
            clock=clock,
            tracer=tracer,
            config=SessionConfig(greeting="Welcome to the clinic.", llm_prefill=False),
        ).run()

    web_ = GatewayWeb({"acme": AUTH}, run_call, clock=clock, public_url="")
    keys = key_table(livekit.api_key, livekit.api_secret, {"acme": ("", "")})
    key = keys[livekit.api_key]
    dispatch = LiveKitDispatch(web_, livekit.url, keys, caller_timeout_s=15)
    worker = LiveKitWorker(dispatch, key, agent_name=AGENT_NAME)
    worker.start()
    try:
        await asyncio.wait_for(worker.state.registered.wait(), 20)
        yield Rig(livekit, dispatch, worker, key)
    finally:
        await worker.close()
        for task in list(web_.calls):
            task.cancel()
        await asyncio.gather(*web_.calls, return_exceptions=True)


async def until(condition: object, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def hears_greeting(rig: Rig, room_name: str, token: str) -> None:
    caller = LiveKitCaller()
    await caller.join(rig.livekit.url, token)
    try:
        await until(lambda: caller.first_loud(0.0) is not None, 30, f"the greeting in {room_name}")
    finally:
        await caller.leave()


def caller_token(key: LiveKitKey, room_name: str, *, with_agent: bool = False) -> str:
    token = livekit_api.AccessToken(key.api_key, key.api_secret).with_identity("caller")
    token = token.with_grants(livekit_api.VideoGrants(room_join=True, room=room_name))
    if with_agent:
        config = room.RoomConfiguration(
            agents=[agent_dispatch.RoomAgentDispatch(agent_name=AGENT_NAME)]
        )
        token = token.with_room_config(config)
    return token.to_jwt()


async def test_an_explicit_dispatch_sends_the_agent(rig: Rig) -> None:
    name = f"acme.support.{uuid.uuid4().hex[:8]}"
    async with livekit_api.LiveKitAPI(
        rig.livekit.http_url, rig.key.api_key, rig.key.api_secret
    ) as lkapi:
        made = await lkapi.agent_dispatch.create_dispatch(
            livekit_api.CreateAgentDispatchRequest(agent_name=AGENT_NAME, room=name)
        )
        assert made.room == name
        await until(lambda: name in rig.worker.state.assigned, 20, "the job's assignment")
        await hears_greeting(rig, name, caller_token(rig.key, name))

        bad = f"nobody.support.{uuid.uuid4().hex[:8]}"
        await lkapi.agent_dispatch.create_dispatch(
            livekit_api.CreateAgentDispatchRequest(agent_name=AGENT_NAME, room=bad)
        )
        reason = "unknown tenant 'nobody'"
        await until(lambda: any(reason in r for r in rig.worker.state.refused), 20, "the refusal")
        assert bad not in rig.worker.state.assigned
        assert bad not in rig.dispatch.rooms


async def test_a_token_naming_the_agent_dispatches_it_on_join(rig: Rig) -> None:
    name = f"acme.support.{uuid.uuid4().hex[:8]}"
    await hears_greeting(rig, name, caller_token(rig.key, name, with_agent=True))
    assert name in rig.worker.state.assigned
