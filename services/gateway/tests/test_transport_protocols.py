from __future__ import annotations

import json

import pytest

from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.transports import plivo_protocol, twilio_protocol
from trunkline.gateway.transports.base import CallStart, Transport
from trunkline.gateway.transports.messages import (
    BadMessageError,
    Connected,
    Digit,
    Ignored,
    Mark,
    Media,
    Start,
    Stop,
)
from trunkline.gateway.transports.websocket import TWILIO
from trunkline.gateway.web import GatewayWeb, TenantAuth
from trunkline.telephony import (
    stream_token,
    twilio_signature,
    valid_stream_token,
    valid_twilio_signature,
)

pytestmark = pytest.mark.unit


def test_twilio_signature_matches_twilios_documented_example() -> None:
    # The worked example from Twilio's "Webhooks security" documentation.
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675310",
        "Digits": "1234",
        "From": "+14158675310",
        "To": "+18005551212",
    }
    assert twilio_signature("12345", url, params) == "GvWf1cFY/Q7PnoempGyD5oXAezc="
    assert valid_twilio_signature("12345", url, params, "GvWf1cFY/Q7PnoempGyD5oXAezc=")
    assert not valid_twilio_signature("12345", url, {**params, "Digits": "0"}, "x")
    assert not valid_twilio_signature("12345", url, params, None)


def test_stream_token_binds_tenant_agent_and_call() -> None:
    token = stream_token("s3cret", "acme", "support", "CA1")
    assert valid_stream_token("s3cret", "acme", "support", "CA1", token)
    assert not valid_stream_token("s3cret", "acme", "support", "CA2", token)
    assert not valid_stream_token("s3cret", "other", "support", "CA1", token)
    assert not valid_stream_token("wrong", "acme", "support", "CA1", token)
    assert not valid_stream_token("s3cret", "acme", "support", "CA1", "")


def test_a_caller_role_counts_only_when_the_token_was_minted_for_it() -> None:
    plain = stream_token("s3cret", "acme", "support", "CA1")
    operator = stream_token("s3cret", "acme", "support", "CA1", role="operator")
    assert plain != operator
    assert stream_token("s3cret", "acme", "support", "CA1", role="caller") == plain
    assert valid_stream_token("s3cret", "acme", "support", "CA1", operator, role="operator")
    # A caller's token with a role parameter added by whoever holds the stream: refused.
    assert not valid_stream_token("s3cret", "acme", "support", "CA1", plain, role="operator")
    assert not valid_stream_token("s3cret", "acme", "support", "CA1", operator)


def test_the_gateway_takes_the_callers_role_from_the_stream_only_with_a_matching_token() -> None:
    async def run_call(start: CallStart, transport: Transport) -> None:
        raise AssertionError("not called")

    auth = TenantAuth("twilio-token", "s3cret", frozenset({"support"}))
    web = GatewayWeb({"acme": auth}, run_call, clock=SystemClock(), public_url="https://gw")
    granted = stream_token("s3cret", "acme", "support", "CA1", role="operator")
    params = {"tenant": "acme", "agent": "support", "caller_role": "operator"}
    start = web._authorise(TWILIO, {**params, "token": granted}, "CA1")
    assert start is not None
    assert start.parameters["caller_role"] == "operator"
    assert "token" not in start.parameters
    plain = stream_token("s3cret", "acme", "support", "CA1")
    assert web._authorise(TWILIO, {**params, "token": plain}, "CA1") is None
    default = web._authorise(TWILIO, {"tenant": "acme", "agent": "support", "token": plain}, "CA1")
    assert default is not None
    assert "caller_role" not in default.parameters


def test_twilio_inbound_messages() -> None:
    assert twilio_protocol.parse('{"event":"connected","protocol":"Call"}') == Connected()
    start = twilio_protocol.parse(
        json.dumps(
            {
                "event": "start",
                "streamSid": "MZ1",
                "start": {
                    "streamSid": "MZ1",
                    "callSid": "CA1",
                    "accountSid": "AC1",
                    "customParameters": {"tenant": "acme"},
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
                },
            }
        )
    )
    assert start == Start("MZ1", "CA1", "AC1", {"tenant": "acme"})
    media = '{"event":"media","media":{"track":"inbound","payload":"//8="}}'
    assert twilio_protocol.parse(media) == Media("//8=")
    assert twilio_protocol.parse('{"event":"mark","mark":{"name":"1.0"}}') == Mark("1.0")
    assert twilio_protocol.parse('{"event":"stop","stop":{}}') == Stop()
    assert twilio_protocol.parse('{"event":"dtmf","dtmf":{"digit":"1"}}') == Digit("1")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not an object"),
        ('{"no": "event"}', "no 'event'"),
        ('{"event": "bogus"}', "unknown event"),
        ('{"event": "media", "media": {}}', "media.payload"),
        ('{"event": "mark", "mark": "x"}', "mark is not an object"),
        ('{"event": "dtmf", "dtmf": {"digit": "12"}}', "not one of 0-9"),
        ('{"event": "dtmf", "dtmf": {"digit": "x"}}', "not one of 0-9"),
        ('{"event": "dtmf"}', "dtmf is not an object"),
        (
            '{"event":"start","start":{"streamSid":"M","callSid":"C",'
            '"mediaFormat":{"encoding":"audio/l16","sampleRate":16000}}}',
            "unsupported media format",
        ),
    ],
)
def test_twilio_malformed_messages_say_why(text: str, reason: str) -> None:
    with pytest.raises(BadMessageError, match=reason):
        twilio_protocol.parse(text)


def test_twilio_outbound_messages_and_twiml() -> None:
    assert json.loads(twilio_protocol.media("MZ1", "AAA=")) == {
        "event": "media",
        "streamSid": "MZ1",
        "media": {"payload": "AAA="},
    }
    assert json.loads(twilio_protocol.mark("MZ1", "2.1"))["mark"] == {"name": "2.1"}
    assert json.loads(twilio_protocol.clear("MZ1")) == {"event": "clear", "streamSid": "MZ1"}
    twiml = twilio_protocol.twiml_stream("wss://gw/twilio/stream", {"tenant": 'a"b&c'})
    assert '<Stream url="wss://gw/twilio/stream">' in twiml
    assert '<Parameter name="tenant" value=\'a"b&amp;c\'/>' in twiml


def test_plivo_messages() -> None:
    start = plivo_protocol.parse(
        '{"event":"start","start":{"streamId":"S1","callId":"C1","accountId":"A1",'
        '"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000}}}'
    )
    assert start == Start("S1", "C1", "A1")
    assert plivo_protocol.parse(
        '{"event":"media","media":{"track":"inbound","payload":"//8="}}'
    ) == Media("//8=")
    assert plivo_protocol.parse('{"event":"playedStream","name":"3.0"}') == Mark("3.0")
    assert plivo_protocol.parse('{"event":"clearedAudio"}') == Ignored("clearedAudio")
    assert plivo_protocol.parse('{"event":"dtmf","dtmf":{"digit":"#"}}') == Digit("#")
    assert plivo_protocol.parse('{"event":"stop"}') == Stop()
    with pytest.raises(BadMessageError, match="unknown event"):
        plivo_protocol.parse('{"event":"nope"}')
    assert json.loads(plivo_protocol.play_audio("AA==")) == {
        "event": "playAudio",
        "media": {"contentType": "audio/x-mulaw", "sampleRate": 8000, "payload": "AA=="},
    }
    assert json.loads(plivo_protocol.checkpoint("S1", "3.0")) == {
        "event": "checkpoint",
        "streamId": "S1",
        "name": "3.0",
    }
    assert json.loads(plivo_protocol.clear_audio("S1")) == {"event": "clearAudio", "streamId": "S1"}
