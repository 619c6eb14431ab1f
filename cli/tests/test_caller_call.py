"""The simulated caller against a scripted Twilio media-stream server on loopback.

The server runs in the test's event loop, so its clock is the caller's clock: what it saw
(arrival of each caller frame, when it sent its reply) checks the caller's own figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import WSCloseCode, WSMsgType, web

from trunkline.audio import mulaw_decode, mulaw_encode
from trunkline.cli.call import add_call_parser, call, settings_from_args
from trunkline.cli.caller import (
    CallerTurn,
    CallIdentity,
    CallOptions,
    PreparedTurn,
    SimulatedCaller,
    direct_target,
    latency_table,
    webhook_target,
)

pytestmark = pytest.mark.integration

FRAME = 0.02
SECRET = "s3cret"


def tone(ms: float, dbfs: float = -12.0, hz: float = 440.0) -> bytes:
    n = round(ms * 8)
    t = np.arange(n) / 8000
    amp = 32767 * 10 ** (dbfs / 20)
    return mulaw_encode((amp * np.sin(2 * np.pi * hz * t)).astype(np.int16))


def quiet(ms: float) -> bytes:
    return b"\xff" * round(ms * 8)


def voiced(mulaw: bytes) -> bool:
    x = mulaw_decode(mulaw).astype(np.float64)
    return bool(len(x)) and float(np.sqrt(np.mean(x * x))) > 32768 * 10 ** (-45 / 20)


@dataclass
class ScriptedAgent:
    """Server side of Twilio Media Streams: replies with a tone ``delay_s`` after the caller's
    last voiced frame (once ``endpoint_s`` of silence confirms it), marks the end of each
    reply, and on caller speech during a reply stops and sends ``clear``."""

    delay_s: float = 0.3
    endpoint_s: float = 0.2
    reply_ms: float = 600.0
    greeting_ms: float = 0.0
    burst: bool = False  # send a whole reply at once (else a 100 ms lead, then paced)
    answer_after_ms: float = 0.0  # > 0: the reply is a filler, the answer comes this long after
    answered: asyncio.Event = field(default_factory=asyncio.Event)  # the answer was sent
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    received: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # of each caller media frame
    start: dict[str, Any] | None = None
    query: dict[str, str] = field(default_factory=dict)
    replies: list[tuple[float, float]] = field(default_factory=list)  # (last voiced in, 1st out)
    marks_sent: list[tuple[float, str]] = field(default_factory=list)
    marks_back: list[tuple[float, str]] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)
    stopped: bool = False
    playing_until: float = 0.0  # when the caller will have heard everything sent so far

    def now(self) -> float:
        return self.loop.time()

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.query = dict(request.query)
        speaking: asyncio.Task[None] | None = None
        answers: list[asyncio.Task[None]] = []
        last_voiced: float | None = None
        turn = 0

        def reply(at: float, ms: float, name: str) -> asyncio.Task[None]:
            return asyncio.create_task(self._speak(ws, at, tone(ms, -10.0, 660.0), name))

        async for msg in ws:
            assert msg.type is WSMsgType.TEXT
            data = json.loads(msg.data)
            self.received.append(data)
            event = data["event"]
            if event == "start":
                self.start = data["start"]
                params = {**self.query, **self.start["customParameters"]}
                expected = hmac.new(
                    SECRET.encode(),
                    f"{params.get('tenant')}\n{params.get('agent')}\n{self.start['callSid']}".encode(),
                    hashlib.sha256,
                ).hexdigest()
                if params.get("token") != expected:
                    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"unauthenticated")
                    break
                if self.greeting_ms:
                    speaking = reply(self.now(), self.greeting_ms, "greeting")
            elif event == "media":
                now = self.now()
                self.arrivals.append(now)
                if voiced(base64.b64decode(data["media"]["payload"])):
                    last_voiced = now
                    if now < self.playing_until:  # barge-in
                        self.playing_until = now
                        if speaking is not None:
                            speaking.cancel()
                        self.clears.append(self.now())
                        await ws.send_str(json.dumps({"event": "clear", "streamSid": "MZ"}))
                elif last_voiced is not None and now - last_voiced >= self.endpoint_s - 1e-3:
                    at = last_voiced + self.delay_s
                    self.replies.append((last_voiced, at))
                    name = f"reply-{turn}"
                    turn += 1
                    speaking = reply(at, self.reply_ms, name)
                    if self.answer_after_ms:
                        later = at + (self.reply_ms + self.answer_after_ms) / 1000
                        answers.append(asyncio.create_task(self._answer(ws, later, name)))
                    last_voiced = None
            elif event == "mark":
                self.marks_back.append((self.now(), data["mark"]["name"]))
            elif event == "stop":
                self.stopped = True
                break
        if speaking is not None:
            speaking.cancel()
        for task in answers:
            task.cancel()
        return ws

    async def _answer(self, ws: web.WebSocketResponse, at: float, name: str) -> None:
        await self._speak(ws, at, tone(self.reply_ms, -10.0, 660.0), f"{name}-answer")
        self.answered.set()

    async def _speak(self, ws: web.WebSocketResponse, at: float, audio: bytes, name: str) -> None:
        frames = [audio[i : i + 160] for i in range(0, len(audio), 160)]
        lead = len(frames) if self.burst else 5
        await asyncio.sleep(max(0.0, at - self.now()))
        at = self.now()
        self.playing_until = at + len(audio) / 8000
        for k, frame in enumerate(frames):
            if k >= lead:
                await asyncio.sleep(max(0.0, at + (k - lead) * FRAME - self.now()))
            payload = base64.b64encode(frame).decode()
            await ws.send_str(
                json.dumps({"event": "media", "streamSid": "MZ", "media": {"payload": payload}})
            )
        self.marks_sent.append((self.now(), name))
        await ws.send_str(json.dumps({"event": "mark", "streamSid": "MZ", "mark": {"name": name}}))


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    runners: list[web.AppRunner] = []

    async def start(agent: ScriptedAgent, extra: dict[str, Any] | None = None) -> str:
        app = web.Application()
        app.router.add_get("/twilio/stream", agent.handler)
        for path, handler in (extra or {}).items():
            app.router.add_post(path, handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def _caller(base: str, **options: Any) -> SimulatedCaller:
    identity = CallIdentity()
    target = direct_target(
        base.replace("http", "ws") + "/twilio/stream",
        identity,
        tenant="acme",
        agent="support",
        stream_secret=SECRET,
    )
    defaults: dict[str, Any] = {"reply_quiet_ms": 300.0, "greeting_timeout_s": 2.0}
    return SimulatedCaller(target, identity, CallOptions(**(defaults | options)))


def _assert_twilio_stream(agent: ScriptedAgent) -> None:
    """The handshake and stream messages, as Twilio sends them."""
    assert [m["event"] for m in agent.received[:3]] == ["connected", "start", "media"]
    assert agent.start is not None
    assert agent.start["mediaFormat"] == {
        "encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1
    }  # fmt: skip
    assert agent.start["customParameters"]["tenant"] == "acme"
    media = [m for m in agent.received if m["event"] == "media"]
    assert [int(m["media"]["chunk"]) for m in media] == list(range(1, len(media) + 1))
    assert [int(m["media"]["timestamp"]) for m in media[:3]] == [0, 20, 40]
    assert all(len(base64.b64decode(m["media"]["payload"])) == 160 for m in media)
    seqs = [int(m["sequenceNumber"]) for m in agent.received[1:]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert agent.stopped


async def test_call_paces_measures_echoes_and_records(serve: Any, tmp_path: Path) -> None:
    agent = ScriptedAgent(delay_s=0.3, reply_ms=600.0, greeting_ms=300.0)
    caller = _caller(await serve(agent))
    utterance = quiet(200) + tone(4400) + quiet(400)  # 5 s; the trailing silence is not speech
    result = await caller.run([PreparedTurn(CallerTurn(text="hello"), utterance)])
    caller.write_recordings(tmp_path / "agent.wav", tmp_path / "call.wav")
    print(latency_table(result))

    _assert_twilio_stream(agent)

    # Pacing: frame k arrives at t0 + k * 20 ms, no drift over the whole call (> 5 s).
    arrivals = np.array(agent.arrivals)
    assert arrivals[-1] - arrivals[0] > 5.0
    error = arrivals - arrivals[0] - np.arange(len(arrivals)) * FRAME
    assert abs(error[-1]) < FRAME, f"drift {error[-1] * 1000:.1f} ms"
    assert float(np.median(np.abs(error))) < 0.005

    # Voice-to-voice: the server replied delay_s after the last voiced frame it received.
    (turn,) = result.turns
    last_in, first_out = agent.replies[-1]
    assert turn.voice_to_voice_ms is not None
    assert abs(turn.voice_to_voice_ms - agent.delay_s * 1000) < 2 * FRAME * 1000
    assert abs(turn.voice_to_voice_ms / 1000 - (first_out - last_in)) < FRAME
    assert turn.speech_end_ms is not None
    assert turn.speech_start_ms is not None
    # The caller's "last voiced frame sent" is the frame the server saw last (not one off).
    assert last_in - (caller.log.t0 + turn.speech_end_ms / 1000) == pytest.approx(0, abs=0.01)
    assert turn.speech_end_ms - turn.speech_start_ms == pytest.approx(
        4380, abs=10
    )  # send jitter only
    assert turn.reply_played_ms == pytest.approx(600, abs=2 * FRAME * 1000)
    assert result.greeting is not None
    assert result.greeting.played_ms == pytest.approx(300, abs=40)

    # Marks come back once the audio before them has been played, not when received.
    sent = {name: t for t, name in agent.marks_sent}
    back = {name: t for t, name in agent.marks_back}
    assert set(back) == {"greeting", "reply-0"}
    assert back["reply-0"] - first_out == pytest.approx(0.6, abs=2 * FRAME)
    assert back["reply-0"] - sent["reply-0"] > 0.05  # sent 100 ms ahead of playback
    assert result.marks_echoed == result.marks_received == 2

    # Recordings: the whole call on a real timeline, agent audio where it was played.
    with wave.open(str(tmp_path / "agent.wav")) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (16000, 1)
        agent_pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    assert len(agent_pcm) / 16000 == pytest.approx(result.duration_ms / 1000, abs=FRAME)
    with wave.open(str(tmp_path / "call.wav")) as wav:
        assert wav.getnchannels() == 2
        assert wav.getnframes() == pytest.approx(len(agent_pcm), abs=2)
    start = round((turn.speech_end_ms + turn.voice_to_voice_ms) / 1000 * 16000)
    loud = np.abs(agent_pcm.astype(np.int32)) > 1000
    during_caller = slice(round(0.5 * 16000), round(4.5 * 16000))
    assert not loud[during_caller].any()  # the agent was silent while the caller spoke
    assert loud[start + 800 : start + 8000].mean() > 0.5  # the reply, 50-500 ms in
    assert not loud[start + 9600 + 1600 :].any()  # and nothing after it (600 ms + margin)


async def test_barge_in_clear_stops_playback_and_echoes_marks(serve: Any) -> None:
    agent = ScriptedAgent(delay_s=0.25, reply_ms=2000.0, burst=True)
    caller = _caller(await serve(agent), wait_greeting=False)
    first = quiet(100) + tone(600) + quiet(300)
    second = tone(600) + quiet(300)
    result = await caller.run(
        [
            PreparedTurn(CallerTurn(text="one"), first),
            PreparedTurn(CallerTurn(text="two", barge_in_ms=400.0), second),
        ]
    )
    print(latency_table(result))
    assert len(agent.clears) == 1
    assert result.clears == 1
    one, two = result.turns
    assert two.agent_was_speaking is True
    assert two.barge_in_clear_ms is not None
    assert 0 <= two.barge_in_clear_ms < 2 * FRAME * 1000
    assert two.barge_in_stop_ms == pytest.approx(two.barge_in_clear_ms, abs=1.0)
    # The first reply played for barge_in_ms until the caller spoke, then stopped at the clear.
    assert one.reply_played_ms is not None
    assert one.reply_played_ms == pytest.approx(400 + two.barge_in_clear_ms, abs=2 * FRAME * 1000)
    assert one.reply_received_ms == pytest.approx(2000, abs=1)  # sent as one burst
    # The mark queued behind the cleared audio comes back at once, as Twilio does.
    back = {name: t for t, name in agent.marks_back}
    assert back["reply-0"] - agent.clears[0] < 2 * FRAME
    # The reply to the barge-in utterance is measured from its own voiced end.
    assert two.voice_to_voice_ms == pytest.approx(250, abs=2 * FRAME * 1000)
    assert two.reply_played_ms == pytest.approx(2000, abs=2 * FRAME * 1000)


async def test_unauthenticated_stream_is_reported(serve: Any) -> None:
    agent = ScriptedAgent()
    base = await serve(agent)
    identity = CallIdentity()
    target = direct_target(
        base.replace("http", "ws") + "/twilio/stream",
        identity,
        tenant="acme",
        agent="support",
        token="forged",
        token_in="query",
    )
    caller = SimulatedCaller(target, identity, CallOptions(greeting_timeout_s=2.0))
    result = await caller.run([PreparedTurn(CallerTurn(text="hi"), tone(300))])
    assert agent.query["token"] == "forged"
    assert agent.start is not None
    assert "token" not in agent.start["customParameters"]
    assert "1008" in result.ended_by
    assert result.turns == []


async def test_webhook_dial_uses_twiml_stream_and_parameters(serve: Any) -> None:
    agent = ScriptedAgent()
    auth_token = "twilio-auth"
    seen: dict[str, str] = {}

    async def voice(request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        url = str(request.url)
        payload = url + "".join(f"{k}{form[k]}" for k in sorted(form))
        digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
        if request.headers.get("X-Twilio-Signature") != base64.b64encode(digest).decode():
            return web.Response(status=403, text="bad signature")
        seen.update(form)
        token = hmac.new(
            SECRET.encode(), f"acme\nsupport\n{form['CallSid']}".encode(), hashlib.sha256
        ).hexdigest()
        stream = url.replace("http", "ws").replace("/voice/acme/support", "/twilio/stream")
        twiml = (
            f'<?xml version="1.0"?><Response><Connect><Stream url="{stream}">'
            '<Parameter name="tenant" value="acme"/><Parameter name="agent" value="support"/>'
            f'<Parameter name="token" value="{token}"/></Stream></Connect></Response>'
        )
        return web.Response(text=twiml, content_type="application/xml")

    base = await serve(agent, {"/voice/acme/support": voice})
    identity = CallIdentity()
    async with aiohttp.ClientSession() as session:
        target = await webhook_target(session, base + "/voice/acme/support", auth_token, identity)
    assert seen["CallSid"] == identity.call_sid
    assert target.url.endswith("/twilio/stream")
    options = CallOptions(wait_greeting=False, reply_quiet_ms=200.0)
    caller = SimulatedCaller(target, identity, options)
    result = await caller.run([PreparedTurn(CallerTurn(text="hi"), tone(300) + quiet(300))])
    assert result.ended_by == "caller"
    assert result.turns[0].outcome == "answered"


async def test_call_command_prints_table_and_writes_json(
    serve: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = ScriptedAgent(delay_s=0.2, reply_ms=300.0)
    base = await serve(agent)
    clip = tmp_path / "clip.wav"
    with wave.open(str(clip), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(np.asarray(mulaw_decode(tone(600) + quiet(200))).repeat(2).tobytes())
    parser = argparse.ArgumentParser()
    add_call_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["call", "--url", base.replace("http", "ws") + "/twilio/stream", "--tenant", "acme",
         "--agent", "support", "--stream-secret", SECRET, "--wav", str(clip), "--no-greeting",
         "--quiet-ms", "200", "--json", str(tmp_path / "r.json"),
         "--record-agent", str(tmp_path / "a.wav")]
    )  # fmt: skip
    assert await call(args, settings_from_args(args)) == 0
    out = capsys.readouterr().out
    assert "v2v ms" in out
    assert "caller: (wav audio)" in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["turns"][0]["voice_to_voice_ms"] == pytest.approx(200, abs=40)
    assert data["summary"]["voice_to_voice_p50_ms"] == data["turns"][0]["voice_to_voice_ms"]
    assert (tmp_path / "a.wav").stat().st_size > 44


async def test_turn_done_keeps_the_caller_on_until_a_slow_answer_after_a_filler(
    serve: Any,
) -> None:
    """A filler, 1.2 s of silence, then the answer: with only the quiet rule (300 ms) the
    caller hangs up after the filler; waiting for ``turn_done`` it hears the answer too."""
    utterance = quiet(200) + tone(800) + quiet(200)
    played = []
    for wait in (False, True):
        agent = ScriptedAgent(delay_s=0.2, reply_ms=300.0, answer_after_ms=1200.0)
        caller = _caller(await serve(agent))
        done: list[int] = []

        async def turn_done(
            call_sid: str, index: int, agent: ScriptedAgent = agent, done: list[int] = done
        ) -> None:
            await agent.answered.wait()
            done.append(index)

        if wait:
            caller.turn_done = turn_done
        result = await caller.run([PreparedTurn(CallerTurn(text="hi"), utterance)])
        assert result.ended_by == "caller"
        assert done == ([0] if wait else [])
        assert agent.answered.is_set() is wait
        played.append(result.turns[0].reply_played_ms)
    without, with_wait = played
    assert without == pytest.approx(300, abs=2 * FRAME * 1000)  # the filler alone
    assert with_wait == pytest.approx(300 + 1200 + 300, abs=3 * FRAME * 1000)
