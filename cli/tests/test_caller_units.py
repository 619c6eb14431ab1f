"""Pure parts of the simulated caller: messages, audio, figures, scenario, dialling, CLI."""

from __future__ import annotations

import argparse
import base64
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from trunkline.audio import mulaw_decode, mulaw_encode
from trunkline.cli.call import add_call_parser
from trunkline.cli.caller import CallerTurn, ScenarioError, load_scenario, stream_token
from trunkline.cli.caller.audio import AudioInputError, read_wav_mulaw8k, voiced_span
from trunkline.cli.caller.dial import CallIdentity, DialError, direct_target, parse_twiml
from trunkline.cli.caller.latency import CallLog, Played, Received, barge_in, percentile, reply
from trunkline.cli.caller.protocol import (
    AgentClear,
    AgentMark,
    AgentMedia,
    ProtocolError,
    TwilioMessages,
    parse_server,
)
from trunkline.cli.caller.recorder import CallRecorder
from trunkline.cli.caller.tts import caller_voice

pytestmark = pytest.mark.unit


def _tone(seconds: float, rate: int = 8000) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)


def test_messages_are_numbered_as_twilio_numbers_them() -> None:
    m = TwilioMessages("MZ1", "CA1", "AC1")
    assert json.loads(m.connected()) == {
        "event": "connected",
        "protocol": "Call",
        "version": "1.0.0",
    }
    start = json.loads(m.start({"token": "t"}))
    assert start["sequenceNumber"] == "1"
    assert start["start"]["customParameters"] == {"token": "t"}
    assert start["start"]["mediaFormat"]["encoding"] == "audio/x-mulaw"
    media = json.loads(m.media(b"\x01" * 160, 40))
    assert media["sequenceNumber"] == "2"
    assert media["media"] == {
        "track": "inbound", "chunk": "1", "timestamp": "40",
        "payload": base64.b64encode(b"\x01" * 160).decode(),
    }  # fmt: skip
    assert json.loads(m.mark("x"))["mark"] == {"name": "x"}
    stop = json.loads(m.stop())
    assert stop["sequenceNumber"] == "4"
    assert stop["stop"]["callSid"] == "CA1"


def test_server_messages_parse_or_say_why() -> None:
    payload = base64.b64encode(b"\x00\x7f").decode()
    assert parse_server(json.dumps({"event": "media", "media": {"payload": payload}})) == (
        AgentMedia(b"\x00\x7f")
    )
    assert parse_server('{"event":"mark","mark":{"name":"m1"}}') == AgentMark("m1")
    assert parse_server('{"event":"clear","streamSid":"MZ"}') == AgentClear()
    for bad, why in [
        ("nope", "not JSON"),
        ('{"event":"media","media":{"payload":"@@"}}', "not base64"),
        ('{"event":"mark"}', "mark.name"),
        ('{"event":"dance"}', "unknown event"),
    ]:
        with pytest.raises(ProtocolError, match=why):
            parse_server(bad)


def test_wav_of_any_rate_and_channels_becomes_mulaw_8k(tmp_path: Path) -> None:
    mono = _tone(1.0, 44100)
    stereo24 = np.repeat(mono.astype(np.int32) << 8, 2)
    raw = b"".join(int(v).to_bytes(4, "little", signed=True)[:3] for v in stereo24)
    path = tmp_path / "a.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(3)
        wav.setframerate(44100)
        wav.writeframes(raw)
    mulaw = read_wav_mulaw8k(path)
    assert len(mulaw) == pytest.approx(8000, abs=2)
    level = np.sqrt(np.mean(mulaw_decode(mulaw)[400:-400].astype(np.float64) ** 2))
    assert level == pytest.approx(8000 / np.sqrt(2), rel=0.05)
    (tmp_path / "bad.wav").write_bytes(b"RIFFnope")
    with pytest.raises(AudioInputError, match=r"bad\.wav"):
        read_wav_mulaw8k(tmp_path / "bad.wav")


def test_voiced_span_ignores_leading_and_trailing_silence() -> None:
    audio = b"\xff" * 800 + mulaw_encode(_tone(0.5)) + b"\xff" * 1600
    assert voiced_span(audio) == (5, 29)
    assert voiced_span(b"\xff" * 1600) is None


def test_reply_and_barge_in_figures_from_a_log() -> None:
    log = CallLog(t0=0.0)
    # A reply received as a burst at 2.0 s, played from 2.0 s; cleared at 2.43 s.
    for k in range(50):
        log.received.append(Received(2.0, 160, True))
        start = 2.0 + k * 0.02
        if start < 2.43:
            log.played.append(Played(start, min(start + 0.02, 2.43), True, 2.0))
    log.clears.append(2.43)
    # The next reply, after the caller's second utterance ended at 3.0 s.
    for k in range(10):
        log.received.append(Received(3.3 + k * 0.02, 160, True))
        log.played.append(Played(3.3 + k * 0.02, 3.32 + k * 0.02, True, 3.3 + k * 0.02))
    first = reply(log, after=1.7, before=3.0)
    assert first.first_audio == 2.0
    assert first.received_s == 1.0
    assert first.played_s == pytest.approx(0.43)
    second = reply(log, after=3.0, before=float("inf"))
    assert second.first_audio == pytest.approx(3.3)
    assert second.played_s == pytest.approx(0.2)
    stop = barge_in(log, onset=2.40, until=3.0)
    assert stop.agent_playing
    assert stop.clear_s == pytest.approx(0.03)
    assert stop.stop_s == pytest.approx(0.03)
    assert not barge_in(log, onset=2.8, until=3.0).agent_playing
    assert reply(log, after=5.0, before=6.0).first_audio is None


def test_barge_in_during_a_pause_between_the_agents_words_counts_as_speaking() -> None:
    log = CallLog(t0=0.0)

    def play(start: float, stop: float, voiced: bool) -> None:
        t = start
        while t < stop - 1e-9:
            log.played.append(Played(t, min(t + 0.02, stop), voiced, 2.0))
            t += 0.02

    play(2.0, 2.4, True)  # a clause
    play(2.4, 2.6, False)  # Piper's pause between clauses: silent frames, still playing
    play(2.6, 2.64, True)  # the next clause, cut by the clear at 2.64
    log.clears.append(2.64)
    play(4.0, 4.2, True)  # the next reply, after the buffer ran dry
    paused = barge_in(log, onset=2.5, until=3.0)
    assert paused.agent_playing
    assert paused.stop_s == pytest.approx(0.14)
    assert paused.clear_s == pytest.approx(0.14)
    # between the replies nothing plays: not a barge-in, whatever came before
    assert not barge_in(log, onset=3.0, until=3.5).agent_playing
    # a stretch of silence alone (no agent speech before the onset) is not speaking either
    log.played.append(Played(5.0, 5.02, False, 5.0))
    assert not barge_in(log, onset=5.01, until=5.5).agent_playing


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(v) for v in range(1, 21)], 95) == 19.0


def test_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "turns:\n  - say: Hello\n  - wav: clip.wav\n    text: shown\n    barge_in_ms: 500\n"
        "  - Plain line\n"
    )
    turns = load_scenario(path)
    assert turns[0] == CallerTurn(text="Hello")
    assert turns[1].wav == tmp_path / "clip.wav"
    assert turns[1].barge_in_ms == 500.0
    assert turns[1].source == "wav"
    assert turns[2].text == "Plain line"
    path.write_text("turns:\n  - sing: la\n")
    with pytest.raises(ScenarioError, match="unknown turn keys"):
        load_scenario(path)
    with pytest.raises(ScenarioError):
        CallerTurn()


def test_auth_goes_where_configured() -> None:
    identity = CallIdentity()
    token = stream_token("sec", "acme", "support", identity.call_sid)
    both = direct_target(
        "ws://h/twilio/stream?x=1", identity, tenant="acme", agent="support",
        stream_secret="sec", token_in="both",
    )  # fmt: skip
    assert both.parameters["token"] == token
    assert both.parameters["from"] == identity.caller
    assert f"token={token}" in both.url
    assert "x=1" in both.url
    query = direct_target("ws://h/s", identity, tenant="a", agent="b", token="t", token_in="query")
    assert "token" not in query.parameters
    assert query.url.endswith("tenant=a&agent=b&token=t")
    twiml = (
        '<Response><Connect><Stream url="wss://g/twilio/stream">'
        '<Parameter name="tenant" value="acme"/></Stream></Connect></Response>'
    )
    assert parse_twiml(twiml).parameters == {"tenant": "acme"}
    with pytest.raises(DialError, match="no <Connect><Stream"):
        parse_twiml("<Response><Say>hi</Say></Response>")


def test_caller_voice_differs_from_the_agent() -> None:
    assert caller_voice(["joe", "amy"]) == "amy"
    assert caller_voice(["joe", "amy"], agent_voice="amy") == "joe"
    assert caller_voice(["joe"], agent_voice="joe") == ""
    assert caller_voice(["joe"]) == ""


def test_recorder_places_audio_on_the_timeline() -> None:
    rec = CallRecorder(t0=10.0)
    loud = mulaw_encode(np.full(160, 5000, dtype=np.int16))
    rec.caller_frame(0, loud)
    rec.agent_played(10.5, loud + loud)
    rec.agent_cut(10.52)
    rec.finish(11.0)
    agent = rec.agent.padded(rec.length)
    assert rec.length == 8000
    assert not agent[:4000].any()
    assert agent[4000:4160].all()
    assert not agent[4160:].any()
    assert rec.caller.padded(rec.length)[:160].all()


def test_call_parser_keeps_turn_order() -> None:
    parser = argparse.ArgumentParser()
    add_call_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["call", "--say", "one", "--wav", "two.wav", "--say", "three"])
    assert [(t.text, t.wav) for t in args.turns] == [
        ("one", None), (None, Path("two.wav")), ("three", None)
    ]  # fmt: skip
    assert args.func.__name__ == "run_call"
    assert args.func(parser.parse_args(["call", "--tenant", "acme"])) == 2


def test_recorder_tracks_grow_in_place_past_their_first_buffer() -> None:
    """A call longer than the first buffer (8 s): every 20 ms frame lands where it was sent,
    gaps stay silent, and a cut silences everything after it."""
    rec = CallRecorder(t0=0.0)
    frames = [mulaw_encode(np.full(160, 100 * (i % 50 + 1), dtype=np.int16)) for i in range(1000)]
    for i, frame in enumerate(frames):  # 20 s of caller audio
        rec.caller_frame(i * 160, frame)
    rec.agent_played(25.0, frames[0])  # after a gap, beyond the caller's track
    rec.finish(26.0)
    caller = rec.caller.padded(rec.length)
    assert rec.length == 26 * 8000
    for i in (0, 399, 400, 999):
        assert (caller[i * 160 : (i + 1) * 160] == mulaw_decode(frames[i])).all()
    assert not caller[160_000:].any()
    agent = rec.agent.padded(rec.length)
    assert not agent[: 25 * 8000].any()
    assert agent[25 * 8000 : 25 * 8000 + 160].all()
    rec.caller_frame(0, frames[10])  # an earlier place is overwritten, not appended
    assert (rec.caller.samples[:160] == mulaw_decode(frames[10])).all()
    rec.agent_cut(25.01)
    assert not rec.agent.samples[25 * 8000 + 80 :].any()
    assert rec.agent.samples[25 * 8000 : 25 * 8000 + 80].all()
