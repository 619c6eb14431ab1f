"""A phone call through LiveKit SIP to the agent, placed by ``sipp`` (Debian ``sip-tester``).

Real: the LiveKit server and LiveKit SIP (both built from the Go module proxy by ``make install``)
sharing a Redis (psrpc), the inbound trunk and dispatch rule made with ``livekit-api``'s
``SipService`` (``trunkline.gateway.livekit_sip``), sipp's SIP INVITE/ACK/BYE over UDP, G.711
mu-law RTP both ways, LiveKit SIP's room named by the rule (``acme.support._<caller>_<random>``),
the server's webhook dispatching that room to the gateway, the agent joining it over WebRTC.

The caller's audio is a recorded question (``tests/data/audio``) converted to 8 kHz mu-law, which
sipp plays with ``rtp_stream`` after a few seconds of silence; the INVITE's SDP announces a Python
UDP receiver, so the agent's audio comes back to it as RTP. The turn's peers are fakes whose speech
is a tone (440 Hz greeting, 880 Hz answer): which one arrived, and when, is read from the RTP.

Bad input: an INVITE for a number no trunk serves is never answered (LiveKit's flood protection:
100 and 180, then no final response), LiveKit SIP logs it with the dialled number and ends it as a
"flood", and no room is made for it.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace import TracerProvider

from trunkline.audio.mulaw import mulaw_decode, pcm16_to_mulaw
from trunkline.devservers import RedisServer
from trunkline.devservers.gotools import ToolMissingError, find_tool
from trunkline.devservers.livekit import LiveKitServer
from trunkline.devservers.livekit_sip import LiveKitSipServer
from trunkline.devservers.ports import free_port
from trunkline.devservers.sipp import (
    RtpReceiver,
    auth_scenario,
    call_scenario,
    message_times,
    rtp_receiver,
    run_sipp,
    unanswered_scenario,
)
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.core.endpointing import EndpointConfig
from trunkline.gateway.core.turns import TurnConfig
from trunkline.gateway.fakes import (
    EnergyDetector,
    FakeContext,
    FakeLanguageModel,
    FakeSynthesizer,
    FakeTranscriber,
    RecordingSink,
)
from trunkline.gateway.livekit_dispatch import LiveKitDispatch
from trunkline.gateway.livekit_rooms import key_table
from trunkline.gateway.livekit_sip import SipRoute, SipRouteSettings, make_route
from trunkline.gateway.peers.base import PeerEnv
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.pipeline import Peers
from trunkline.gateway.session import CallSession, SessionConfig
from trunkline.gateway.transports.base import CallStart, Transport
from trunkline.gateway.web import GatewayWeb, TenantAuth

pytestmark = [
    pytest.mark.integration,
    # livekit 1.2.1 sometimes drops a native handle twice at GC (see test_livekit_call.py).
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

QUESTION = Path(__file__).resolve().parents[3] / "tests/data/audio/acme-main-street-caller-8k.wav"
NUMBER = "+15550100"  # the trunk's number
CALLER = "+15550199"  # LiveKit hides all but its last 4 digits: rooms acme.support._0199_<id>
GREETING = "Welcome to the clinic, how can I help?"  # 8 words
ANSWER = " ".join(["open"] * 20)
FRAMES_PER_WORD = 5
GREETING_HZ, ANSWER_HZ = 440.0, 880.0
LEAD_S, TAIL_S = 3.0, 6.0  # silence before and after the question, in the caller's RTP
GATEWAY_PORT = free_port()
AUTH = TenantAuth("twilio-token", "stream-secret", frozenset({"support", "billing"}))


class ToneSynthesizer(FakeSynthesizer):
    """``frames_per_word`` 20 ms of a tone per word: 880 Hz for the answer's words, else 440 Hz
    (the greeting, spoken clause by clause)."""

    async def _synthesize(self, call: CallInfo, text: str):  # type: ignore[no-untyped-def]
        self.texts.append(text)
        n = self.sample_rate // 50 * self.frames_per_word
        t = np.arange(n) / self.sample_rate
        for word in text.split():
            hz = ANSWER_HZ if word in ANSWER.split() else GREETING_HZ
            yield (8000 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def tools_or_skip() -> None:
    """Skip (saying what to run) only when a binary is not built or sipp is not installed."""
    missing = []
    for name in ("livekit-server", "livekit-sip"):
        try:
            find_tool(name)
        except ToolMissingError as exc:
            missing.append(str(exc))
    if shutil.which("sipp") is None:
        missing.append("sipp is not installed (Debian sip-tester: `make sip-deps`)")
    if missing:
        pytest.skip("; ".join(missing))


@dataclass
class Servers:
    redis: RedisServer
    livekit: LiveKitServer
    sip: LiveKitSipServer


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    tools_or_skip()
    run_dir = tmp_path_factory.mktemp("sip")
    with RedisServer(run_dir=run_dir) as redis:
        livekit = LiveKitServer(
            webhook_urls=[f"http://127.0.0.1:{GATEWAY_PORT}/livekit/webhook"],
            redis_url=redis.url,
            run_dir=run_dir,
        )
        with livekit:
            sip = LiveKitSipServer(
                livekit_url=livekit.url,
                api_key=livekit.api_key,
                api_secret=livekit.api_secret,
                redis_url=redis.url,
                run_dir=run_dir,
            )
            with sip:
                yield Servers(redis, livekit, sip)


@dataclass
class Rig:
    servers: Servers
    sinks: dict[str, RecordingSink] = field(default_factory=dict)


@pytest.fixture
async def rig(servers: Servers) -> AsyncIterator[Rig]:
    livekit = servers.livekit
    settings = SipRouteSettings(
        url=livekit.url, api_key=livekit.api_key, api_secret=livekit.api_secret
    )
    await make_route(settings, SipRoute("acme", "support", (NUMBER,), ("127.0.0.1/32",)))
    clock = SystemClock()
    tracer = TracerProvider().get_tracer("test")
    rig = Rig(servers)

    async def run_call(start: CallStart, transport: Transport) -> None:
        env = PeerEnv(clock, tracer)
        sink = rig.sinks[start.stream_id] = RecordingSink()
        session = CallSession(
            CallInfo(start.call_id, start.tenant, start.agent, "v1"),
            transport,
            Peers(
                FakeTranscriber(env, lambda audio: "what are your hours"),
                FakeContext(env),
                FakeLanguageModel(env, lambda text: ANSWER),
                ToneSynthesizer(env, FRAMES_PER_WORD, sample_rate=transport.out_rate),
            ),
            EnergyDetector(floor=300),
            sink,
            clock=clock,
            tracer=tracer,
            config=SessionConfig(
                turn=TurnConfig(endpoint=EndpointConfig(onset_frames=3, endpoint_ms=400)),
                greeting=GREETING,
                grounding_texts=(ANSWER,),
                llm_prefill=False,
            ),
        )
        await session.run()

    web = GatewayWeb({"acme": AUTH}, run_call, clock=clock, public_url="")
    keys = key_table(livekit.api_key, livekit.api_secret, {"acme": ("", "")})
    dispatch = LiveKitDispatch(web, livekit.url, keys, caller_timeout_s=10)
    app = web.app()
    dispatch.add_routes(app)
    server = TestServer(app, host="127.0.0.1", port=GATEWAY_PORT)
    await server.start_server()
    yield rig
    await server.close()
    for task in list(web.calls):
        task.cancel()
    await asyncio.wait_for(asyncio.gather(*web.calls, return_exceptions=True), 10)


# -- the caller: sipp for SIP, a WAV for its RTP, a UDP socket for what comes back ------------


def caller_audio(path: Path) -> tuple[float, float]:
    """The recorded question between silences as raw 8 kHz mu-law (what sipp's ``rtp_stream``
    sends as PCMU payloads; sipp 3.6.1 sends a WAV's header as audio too); returns its seconds
    and the question's."""
    with wave.open(str(QUESTION)) as source:
        assert (source.getframerate(), source.getsampwidth()) == (8000, 2)
        question = pcm16_to_mulaw(source.readframes(source.getnframes()))
    data = b"\xff" * int(8000 * LEAD_S) + question + b"\xff" * int(8000 * TAIL_S)
    path.write_bytes(data)
    return len(data) / 8000, len(question) / 8000


def tone_at(rtp: RtpReceiver, hz: float) -> list[float]:
    """Arrival times of the PCMU packets whose audio is loud and mostly ``hz``."""
    return [at for at, pt, payload in rtp.packets if pt == 0 and _tone(payload) == hz]


def _tone(payload: bytes) -> float | None:
    samples = mulaw_decode(payload).astype(np.float64)
    if samples.size < 80 or np.sqrt(np.mean(samples**2)) < 300:
        return None
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    peak = float(np.fft.rfftfreq(samples.size, 1 / 8000)[int(np.argmax(spectrum))])
    return next((hz for hz in (GREETING_HZ, ANSWER_HZ) if abs(peak - hz) < 60), None)


def sip_log(sip: LiveKitSipServer) -> list[str]:
    return sip.log_path.read_text(errors="replace").splitlines()


# -- tests -------------------------------------------------------------------------------------


async def test_a_sipp_call_hears_the_greeting_then_the_answer(rig: Rig, tmp_path: Path) -> None:
    seconds, question_s = caller_audio(tmp_path / "caller.ulaw")
    sip = rig.servers.sip
    udp, rtp, port = await rtp_receiver()
    try:
        scenario = call_scenario(CALLER, port, tmp_path / "caller.ulaw", seconds)
        sipp = await run_sipp(sip.host, sip.port, NUMBER, scenario, tmp_path / "sipp")
    finally:
        udp.close()
    assert sipp.code == 0, f"sipp exit {sipp.code}: {sipp.errors[-3000:]}"
    times = message_times(sipp.messages)
    invite_at = next(at for at, line in times if line.startswith("INVITE "))
    answered_at = next(at for at, line in times if line.startswith("SIP/2.0 200"))
    ack_at = next(at for at, line in times if line.startswith("ACK "))

    rooms = [room for room in rig.sinks if room.startswith("acme.support._0199_")]
    assert len(rooms) == 1, list(rig.sinks)  # the rule's room, our scheme, number hidden
    sink = rig.sinks[rooms[0]]
    assert any(t.user_text == "what are your hours" for t in sink.turns), sink.turns

    greeting, answer = tone_at(rtp, GREETING_HZ), tone_at(rtp, ANSWER_HZ)
    words = len(GREETING.split())
    assert len(greeting) >= words * FRAMES_PER_WORD // 2, (len(greeting), len(rtp.packets))
    assert answer, f"no answer heard ({len(rtp.packets)} packets, {len(greeting)} greeting)"
    question_at = ack_at + LEAD_S
    assert greeting[0] < question_at < answer[0], (greeting[0], question_at, answer[0])
    assert len(answer) >= 20  # the answer's tone, not a stray packet
    print(
        f"livekit sip: INVITE -> 200 OK {1000 * (answered_at - invite_at):.0f} ms; greeting "
        f"first audio {1000 * (greeting[0] - answered_at):.0f} ms after the 200 OK "
        f"({1000 * (greeting[0] - invite_at):.0f} ms after the INVITE); answer first audio "
        f"{1000 * (answer[0] - question_at - question_s):.0f} ms after the question's end "
        f"(endpoint 400 ms, fake peers); "
        f"{len(rtp.packets)} RTP packets back, {len(greeting)} greeting, {len(answer)} answer"
    )


async def test_an_invite_for_an_unknown_number_is_never_answered(rig: Rig, tmp_path: Path) -> None:
    """LiveKit's flood protection: a call no trunk serves gets 100 and 180, then nothing (no
    final response, no room); LiveKit SIP logs the dialled number and ends it as a flood."""
    sip = rig.servers.sip
    udp, rtp, port = await rtp_receiver()
    try:
        scenario = unanswered_scenario(CALLER, port, wait_ms=4000)
        sipp = await run_sipp(sip.host, sip.port, "+15559999", scenario, tmp_path / "sipp")
    finally:
        udp.close()
    assert sipp.code == 0, f"sipp exit {sipp.code}: {sipp.errors[-3000:]}"
    answers = [line for _, line in message_times(sipp.messages) if line.startswith("SIP/2.0")]
    assert answers == ["SIP/2.0 100 Processing", "SIP/2.0 180 Ringing"], answers
    log = await asyncio.to_thread(sip_log, sip)
    invite = next(line for line in log if "processing invite" in line and "+15559999" in line)
    call_id = re.search(r'"callID": "(SCL_\w+)"', invite)
    assert call_id is not None, invite
    ended = [line for line in log if "SIP call ended" in line and call_id[1] in line]
    assert ended, log[-20:]
    assert '"reason": "flood"' in ended[0]
    assert rig.sinks == {}  # no room, no call at the gateway
    assert rtp.packets == []


async def test_a_trunk_with_digest_auth_answers_the_right_password_only(
    rig: Rig, tmp_path: Path
) -> None:
    """A carrier that authenticates: the trunk's user and password (the route maker's
    ``--auth-user``); LiveKit SIP challenges the INVITE (407), answers the one with the right
    digest (200) and refuses a wrong one (401)."""
    livekit, sip = rig.servers.livekit, rig.servers.sip
    settings = SipRouteSettings(
        url=livekit.url, api_key=livekit.api_key, api_secret=livekit.api_secret
    )
    number = "+15550111"
    route = SipRoute("acme", "billing", (number,), ("127.0.0.1/32",), "carrier", "right-pass-1")
    await make_route(settings, route)
    udp, _, port = await rtp_receiver()
    try:
        results = {}
        for password, answered in (("wrong-pass-2", False), ("right-pass-1", True)):
            scenario = auth_scenario(CALLER, port, "carrier", password, answered=answered)
            workdir = tmp_path / password
            results[password] = await run_sipp(sip.host, sip.port, number, scenario, workdir)
    finally:
        udp.close()
    for password, result in results.items():
        assert result.code == 0, f"{password}: sipp exit {result.code}: {result.errors[-3000:]}"
    wrong = [line for _, line in message_times(results["wrong-pass-2"].messages)]
    right = [line for _, line in message_times(results["right-pass-1"].messages)]
    assert any(line.startswith("SIP/2.0 407") for line in wrong + right)
    assert any(line.startswith("SIP/2.0 401") for line in wrong)
    assert not any(line.startswith("SIP/2.0 200") for line in wrong)
    assert any(line.startswith("SIP/2.0 200") for line in right)
