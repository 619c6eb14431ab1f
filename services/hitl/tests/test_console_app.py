"""The console's web app in process: login, CSRF on every action, tenant isolation, the live
streams' content, and the softphone's signaling relay (the feed is in memory here; the
JetStream feed and a browser are in the integration tests)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from trunkline.hitl.console.app import Console, ConsoleConfig
from trunkline.hitl.console.fakes import EchoSignaling, MemoryFeed
from trunkline.hitl.console.operators import Operator, OperatorBook, hash_password
from trunkline.hitl.console.signaling import SignalingError
from trunkline.proto.common.v1 import call_pb2, timing_pb2, transcript_pb2
from trunkline.proto.events.v1 import events_pb2

pytestmark = pytest.mark.unit

PASSWORD = "s3cret-pass"
HASH = hash_password(PASSWORD)
OPERATORS = OperatorBook(
    [
        Operator("alice", "acme", "Alice", HASH),
        Operator("gus", "globex", "Gus", HASH),
    ]
)


def context(tenant: str, call_id: str, turn: int = 0) -> call_pb2.CallContext:
    return call_pb2.CallContext(
        tenant_id=tenant,
        call_id=call_id,
        agent=call_pb2.AgentRef(name="support", version="v1"),
        turn_index=turn,
    )


def turn(tenant: str, call_id: str, said: str) -> events_pb2.TurnCompleted:
    event = events_pb2.TurnCompleted(
        context=context(tenant, call_id, 1), caller_transcript=said, agent_reply="Sure."
    )
    for stage, millis in (("turn.endpointing", 380), ("stt.final", 90), ("turn.response", 700)):
        timing = timing_pb2.StageTiming(stage=stage)
        timing.duration.FromMilliseconds(millis)
        event.stages.append(timing)
    return event


@pytest.fixture
def feed() -> MemoryFeed:
    return MemoryFeed()


@pytest.fixture
def signaling() -> EchoSignaling:
    return EchoSignaling()


@pytest.fixture
def console(feed: MemoryFeed, signaling: EchoSignaling) -> Console:
    return Console(ConsoleConfig(session_secret="test-secret"), OPERATORS, feed, None, signaling)


@pytest.fixture
def client(console: Console) -> Iterator[TestClient]:
    with TestClient(console.app(), base_url="http://console.test") as http:
        yield http


def csrf(page: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert found is not None, "the page carries no CSRF token"
    return found.group(1)


def log_in(client: TestClient, operator: str = "alice") -> str:
    token = csrf(client.get("/login").text)
    reply = client.post(
        "/login",
        data={"operator": operator, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert reply.status_code == 303, reply.text
    return csrf(client.get("/calls").text)


def test_every_post_route_checks_csrf(console: Console) -> None:
    posts = [
        route
        for route in console.app().routes
        if isinstance(route, Route) and "POST" in (route.methods or ())
    ]
    assert len(posts) >= 8
    unchecked = [r.path for r in posts if not getattr(r.endpoint, "csrf_checked", False)]
    assert unchecked == []


def test_login_needs_the_right_password_and_a_csrf_token(client: TestClient) -> None:
    assert client.get("/calls", follow_redirects=False).headers["location"] == "/login"
    token = csrf(client.get("/login").text)
    wrong = client.post(
        "/login", data={"operator": "alice", "password": "nope", "csrf_token": token}
    )
    assert wrong.status_code == 401
    assert "unknown operator or wrong password" in html.unescape(wrong.text)
    forged = client.post("/login", data={"operator": "alice", "password": PASSWORD})
    assert forged.status_code == 403
    assert "CSRF token is missing or stale" in html.unescape(forged.text)
    stale = client.post(
        "/login", data={"operator": "alice", "password": PASSWORD, "csrf_token": "x" + token}
    )
    assert stale.status_code == 403
    after = log_in(client)
    assert after != token  # the login starts a fresh session token
    page = client.get("/calls")
    assert "Alice · acme" in html.unescape(page.text)


def test_actions_without_the_sessions_token_are_refused(client: TestClient) -> None:
    token = log_in(client)
    for path in ("/tickets/T1/accept", "/tickets/T1/decide", "/tickets/T1/handback", "/logout"):
        reply = client.post(path, data={"outcome": "approved"})
        assert reply.status_code == 403, path
        assert "CSRF" in html.unescape(reply.text)
    json_reply = client.post(
        "/tickets/T1/talk",
        json={"sdp": "v=0", "type": "offer"},
        headers={"X-CSRF-Token": "forged", "Accept": "application/json"},
    )
    assert json_reply.status_code == 403
    assert "CSRF" in json_reply.json()["error"]
    # another browser's token is no good either
    with TestClient(client.app, base_url="http://console.test") as other:
        other_token = log_in(other, "gus")
    assert other_token != token
    crossed = client.post("/logout", data={"csrf_token": other_token})
    assert crossed.status_code == 403


def test_malformed_actions_get_clear_errors(client: TestClient) -> None:
    token = log_in(client)
    weird = client.post(
        "/tickets/T1/decide", content=b"\x00\x01", headers={"Content-Type": "text/plain"}
    )
    assert weird.status_code == 415
    assert "unsupported content type" in html.unescape(weird.text)
    broken = client.post(
        "/softphone/offer",
        content=b"{not json",
        headers={"Content-Type": "application/json", "X-CSRF-Token": token},
    )
    assert broken.status_code == 400
    assert "not valid JSON" in broken.json()["error"]
    bad_outcome = client.post("/tickets/T1/decide", data={"csrf_token": token, "outcome": "maybe"})
    assert bad_outcome.status_code == 400
    assert "outcome must be 'approved' or 'denied'" in html.unescape(bad_outcome.text)
    bad_arguments = client.post(
        "/tickets/T1/decide",
        data={"csrf_token": token, "outcome": "approved", "arguments_json": "[1, 2"},
    )
    assert bad_arguments.status_code == 400
    assert "edited arguments are not valid JSON" in html.unescape(bad_arguments.text)
    not_object = client.post(
        "/tickets/T1/decide",
        data={"csrf_token": token, "outcome": "approved", "arguments_json": "[1, 2]"},
    )
    assert "must be a JSON object" in html.unescape(not_object.text)
    assert client.get("/calls/bad.id").status_code == 400


async def test_an_operator_sees_only_their_tenants_calls(
    client: TestClient, feed: MemoryFeed
) -> None:
    await feed.add(events_pb2.CallStarted(context=context("acme", "CA-acme")))
    await feed.add(events_pb2.CallStarted(context=context("globex", "CA-globex")))
    await feed.add(turn("acme", "CA-acme", "when are you open on saturday"))
    await feed.add(turn("globex", "CA-globex", "my globex account number is 42"))
    log_in(client, "alice")
    listing = client.get("/calls/stream").text
    assert 'id="call-CA-acme"' in listing
    assert "CA-globex" not in listing
    assert "globex account" not in listing
    page = client.get("/calls/CA-globex")
    assert page.status_code == 404
    assert "no call 'CA-globex' in tenant 'acme'" in html.unescape(page.text)
    assert client.get("/calls/CA-acme").status_code == 200
    # the stream of another tenant's call carries nothing of it
    foreign = client.get("/calls/CA-globex/stream").text
    assert "globex" not in foreign
    transcript = client.get("/calls/CA-acme/stream").text
    assert "event: turn" in transcript
    assert "when are you open on saturday" in transcript
    assert 'data-stage="stt.final"' in transcript
    assert "<svg" in transcript


def test_streams_and_pages_need_a_login(client: TestClient) -> None:
    assert client.get("/calls/stream").status_code == 401
    assert client.get("/calls/CA1/stream").status_code == 401
    assert client.get("/calls/CA1", follow_redirects=False).status_code == 303
    assert client.get("/queue", follow_redirects=False).status_code == 303


def test_softphone_relays_offers_to_the_gateway(
    client: TestClient, signaling: EchoSignaling
) -> None:
    token = csrf(client.get("/softphone").text)
    offer = {"sdp": "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\n", "type": "offer"}
    reply = client.post(
        "/softphone/offer",
        json={**offer, "tenant": "acme", "agent": "acme-dental"},
        headers={"X-CSRF-Token": token},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["type"] == "answer"
    assert signaling.offers == [{**offer, "tenant": "acme", "agent": "acme-dental"}]
    for body, message in [
        ({**offer, "tenant": "ac.me", "agent": "x"}, "plain names"),
        ({"sdp": "hello", "type": "offer", "tenant": "acme", "agent": "x"}, "SDP session"),
        ({**offer, "type": "answer", "tenant": "acme", "agent": "x"}, "type must be 'offer'"),
        ({**offer, "agent": "x"}, "'tenant' is missing"),
    ]:
        refused = client.post("/softphone/offer", json=body, headers={"X-CSRF-Token": token})
        assert refused.status_code == 400
        assert message in refused.json()["error"]
    assert len(signaling.offers) == 1
    signaling.error = SignalingError(502, "the gateway at http://gw did not answer")
    down = client.post(
        "/softphone/offer",
        json={**offer, "tenant": "acme", "agent": "x"},
        headers={"X-CSRF-Token": token},
    )
    assert down.status_code == 502
    assert "did not answer" in down.json()["error"]


def test_the_softphone_offers_the_livekit_page_when_configured(
    feed: MemoryFeed, signaling: EchoSignaling, client: TestClient
) -> None:
    assert 'id="livekit-call"' not in client.get("/softphone").text
    config = ConsoleConfig(
        session_secret="test-secret", livekit_call_url="http://gw.test/livekit/call"
    )
    console = Console(config, OPERATORS, feed, None, signaling)
    with TestClient(console.app(), base_url="http://console.test") as http:
        page = http.get("/softphone?tenant=acme&agent=a%26b").text
    assert 'href="http://gw.test/livekit/call?tenant=acme&amp;agent=a%26b"' in page


def handoff_line(tenant: str, call_id: str, speaker: int, text: str, second: int) -> object:
    event = events_pb2.HandoffLine(
        context=context(tenant, call_id),
        ticket_id="t-1",
        line=transcript_pb2.TranscriptEntry(speaker=speaker, text=text),
        operator_id="alice",
    )
    event.line.spoken_at.FromSeconds(1_700_000_000 + second)
    return event


async def test_lines_said_with_the_operator_stream_into_the_calls_transcript(
    client: TestClient, feed: MemoryFeed
) -> None:
    await feed.add(events_pb2.CallStarted(context=context("acme", "CA-acme")))
    await feed.add(events_pb2.CallStarted(context=context("globex", "CA-globex")))
    await feed.add(turn("acme", "CA-acme", "I want to talk to a real person"))
    caller, operator = transcript_pb2.SPEAKER_CALLER, transcript_pb2.SPEAKER_OPERATOR
    await feed.add(handoff_line("acme", "CA-acme", caller, "my crown fell out", 1))  # type: ignore[arg-type]
    await feed.add(handoff_line("acme", "CA-acme", operator, "we can see you at three", 4))  # type: ignore[arg-type]
    await feed.add(handoff_line("globex", "CA-globex", caller, "globex secret words", 2))  # type: ignore[arg-type]
    log_in(client, "alice")
    stream = client.get("/calls/CA-acme/stream").text
    events = [block for block in stream.split("\r\n\r\n") if "event: line" in block]
    assert len(events) == 2, stream
    assert 'data-speaker="caller"' in events[0]
    assert "my crown fell out" in events[0]
    assert 'data-speaker="operator"' in events[1]
    assert "we can see you at three" in events[1]
    assert stream.index("real person") < stream.index("my crown fell out")  # in order said
    assert "globex" not in stream
    assert "globex secret words" not in client.get("/calls/CA-globex/stream").text
