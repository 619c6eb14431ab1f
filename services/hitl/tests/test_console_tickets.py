"""The console's queue pages and ticket actions over the real hitl TicketQueue (in-memory
store): accept, talk, hand back, approve with edited arguments, deny; tenant isolation, races
and closed tickets give clear errors."""

from __future__ import annotations

import asyncio
import html
import itertools
import re
import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from trunkline.hitl.console.app import Console, ConsoleConfig
from trunkline.hitl.console.desk import Desk
from trunkline.hitl.console.fakes import EchoSignaling, MemoryFeed
from trunkline.hitl.console.operators import Operator, OperatorBook, hash_password
from trunkline.hitl.core.tickets import (
    ApprovalInfo,
    CallRef,
    CustomerRecord,
    EscalationInfo,
    Line,
    State,
)
from trunkline.hitl.fakes import MemoryTicketStore
from trunkline.hitl.queue import TicketQueue
from trunkline.telephony.join import verify_join

pytestmark = pytest.mark.unit

PASSWORD = "pw-123456"
HASH = hash_password(PASSWORD)
OPERATORS = OperatorBook(
    [
        Operator("alice", "acme", "Alice", HASH),
        Operator("amir", "acme", "Amir", HASH),
        Operator("gus", "globex", "Gus", HASH),
    ]
)
SECRET = b"join-secret"
OFFER = {"sdp": "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\n", "type": "offer"}


@pytest.fixture
def queue() -> TicketQueue:
    ids = itertools.count(1)
    # ten characters: "T1" was found inside a page's random CSRF token now and then
    return TicketQueue(MemoryTicketStore(), new_id=lambda: f"tk{next(ids):08d}")


@pytest.fixture
def signaling() -> EchoSignaling:
    return EchoSignaling()


@pytest.fixture
def console(queue: TicketQueue, signaling: EchoSignaling) -> Console:
    return Console(
        ConsoleConfig(session_secret="s"),
        OPERATORS,
        MemoryFeed(),
        Desk(queue, join_secret=SECRET),
        signaling,
    )


class Browser:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.token = ""

    def log_in(self, operator: str) -> Browser:
        self.token = self._csrf(self.client.get("/login").text)
        reply = self.client.post(
            "/login",
            data={"operator": operator, "password": PASSWORD, "csrf_token": self.token},
            follow_redirects=False,
        )
        assert reply.status_code == 303
        self.token = self._csrf(self.client.get("/calls").text)
        return self

    @staticmethod
    def _csrf(page: str) -> str:
        found = re.search(r'name="csrf-token" content="([^"]+)"', page)
        assert found is not None
        return found.group(1)

    def get(self, path: str) -> tuple[int, str]:
        reply = self.client.get(path, follow_redirects=False)
        return reply.status_code, html.unescape(reply.text)

    def post(self, path: str, **fields: str) -> tuple[int, str]:
        reply = self.client.post(
            path, data={"csrf_token": self.token, **fields}, follow_redirects=False
        )
        return reply.status_code, html.unescape(reply.text)

    def talk(self, ticket_id: str) -> tuple[int, dict[str, str]]:
        reply = self.client.post(
            f"/tickets/{ticket_id}/talk", json=OFFER, headers={"X-CSRF-Token": self.token}
        )
        return reply.status_code, reply.json()


@pytest.fixture
def browsers(console: Console) -> Iterator[dict[str, Browser]]:
    app = console.app()
    with (
        TestClient(app, base_url="http://c.test") as a,
        TestClient(app, base_url="http://c.test") as b,
        TestClient(app, base_url="http://c.test") as g,
    ):
        yield {
            "alice": Browser(a).log_in("alice"),
            "amir": Browser(b).log_in("amir"),
            "gus": Browser(g).log_in("gus"),
        }


def call(tenant: str = "acme", call_id: str = "CA1") -> CallRef:
    return CallRef(
        tenant, call_id, caller_address="+15550001", agent_name="acme-dental", agent_version="v2"
    )


async def escalate(queue: TicketQueue, tenant: str = "acme", call_id: str = "CA1") -> str:
    ticket = await queue.escalate(
        call(tenant, call_id),
        EscalationInfo(
            reason="caller_request",
            detail="asked for a person",
            customer=CustomerRecord("c-1", "crm", (("plan", "gold"), ("name", "Dana Reyes"))),
        ),
        [
            Line("agent", "Hi, this is Ava."),
            Line("caller", "This is the third time I am calling about my refund."),
            Line("caller", "I want to talk to a real person."),
        ],
    )
    return ticket.ticket_id


async def test_an_operator_accepts_talks_and_hands_back(
    queue: TicketQueue, browsers: dict[str, Browser], signaling: EchoSignaling
) -> None:
    ticket_id = await escalate(queue)
    alice = browsers["alice"]
    status, page = alice.get("/queue")
    assert status == 200
    assert f'id="ticket-{ticket_id}"' in page
    assert "Escalations (1)" in page
    status, panel = alice.get(f"/tickets/{ticket_id}")
    assert "I want to talk to a real person." in panel  # transcript
    assert "Dana Reyes" in panel  # the caller's record
    assert "caller_request" in panel
    code, refused = alice.talk(ticket_id)
    assert code == 409
    assert "accept ticket" in refused["error"]
    assert alice.post(f"/tickets/{ticket_id}/accept")[0] == 303
    assert (await queue.get("acme", ticket_id)).state is State.TAKEN_OVER
    _, panel = alice.get(f"/tickets/{ticket_id}")
    assert 'id="talk-start"' in panel
    assert "Hand back" in panel
    code, answer = alice.talk(ticket_id)
    assert code == 200, answer
    assert answer["type"] == "answer"
    sent = signaling.offers[-1]
    assert sent["ticket_id"] == ticket_id
    grant = verify_join(SECRET, sent["token"], time.time())
    assert (grant.tenant_id, grant.ticket_id, grant.operator_id) == ("acme", ticket_id, "alice")
    # another operator of the same tenant cannot take it or talk on it
    amir = browsers["amir"]
    code, text = amir.post(f"/tickets/{ticket_id}/accept")
    assert code == 409
    assert "alice" in text
    assert amir.talk(ticket_id)[0] == 409
    code, _ = alice.post(
        f"/tickets/{ticket_id}/handback", note="refund sent today", end_call="false"
    )
    assert code == 303
    done = await queue.get("acme", ticket_id)
    assert done.state is State.HANDED_BACK
    assert done.decision is not None
    assert done.decision.note == "refund sent today"
    code, text = alice.post(f"/tickets/{ticket_id}/handback", note="again")
    assert code == 409  # closed


async def test_another_tenants_operator_never_sees_or_touches_the_ticket(
    queue: TicketQueue, browsers: dict[str, Browser]
) -> None:
    ticket_id = await escalate(queue)
    gus = browsers["gus"]
    _, page = gus.get("/queue")
    assert ticket_id not in page
    assert "Escalations (0)" in page
    code, text = gus.get(f"/tickets/{ticket_id}")
    assert code == 403
    assert "does not belong to tenant 'globex'" in text
    code, text = gus.post(f"/tickets/{ticket_id}/accept")
    assert code == 403
    assert gus.talk(ticket_id)[0] == 403
    code, _ = gus.post(f"/tickets/{ticket_id}/decide", outcome="denied")
    assert code == 403
    assert (await queue.get("acme", ticket_id)).state is State.QUEUED  # nothing changed
    code, text = gus.get("/tickets/T404")
    assert code == 404
    assert "no ticket 'T404'" in text


async def test_two_operators_accept_at_once_exactly_one_wins(
    queue: TicketQueue, browsers: dict[str, Browser]
) -> None:
    ticket_id = await escalate(queue)
    results = [browsers[name].post(f"/tickets/{ticket_id}/accept")[0] for name in ("alice", "amir")]
    assert sorted(results) == [303, 409]
    assert (await queue.get("acme", ticket_id)).operator_id == "alice"


async def test_approvals_are_approved_with_edits_or_denied(
    queue: TicketQueue, browsers: dict[str, Browser]
) -> None:
    refund = await queue.request_approval(
        call(),
        ApprovalInfo("tc-1", "issue_refund", '{"amount": 120}', justification="double charge"),
    )
    cancel = await queue.request_approval(
        call(call_id="CA2"), ApprovalInfo("tc-2", "cancel_plan", "{}", justification="asked")
    )
    alice = browsers["alice"]
    _, page = alice.get("/queue")
    assert "Approvals (2)" in page
    assert "issue_refund" in page
    assert "double charge" in page
    code, _ = alice.post(
        f"/tickets/{refund.ticket_id}/decide", outcome="approved", arguments_json='{"amount": 100}'
    )
    assert code == 303
    decided = await queue.get("acme", refund.ticket_id)
    assert decided.decision is not None
    assert (decided.decision.outcome, decided.decision.arguments_json) == (
        "approved",
        '{"amount": 100}',
    )
    code, _ = alice.post(
        f"/tickets/{cancel.ticket_id}/decide", outcome="denied", note="no", arguments_json="{}"
    )  # the form always sends the arguments
    assert code == 303
    denied = await queue.get("acme", cancel.ticket_id)
    assert denied.decision is not None
    assert denied.decision.outcome == "denied"
    code, text = alice.post(f"/tickets/{cancel.ticket_id}/decide", outcome="approved")
    assert code == 409
    assert cancel.ticket_id in text
    _, page = alice.get("/queue")
    assert "Approvals (0)" in page


async def test_an_expired_approval_cannot_be_decided(browsers: dict[str, Browser]) -> None:
    ids = itertools.count(1)
    now = [1000.0]

    class Clock:
        def now(self) -> float:
            return now[0]

        async def sleep(self, seconds: float) -> None:
            now[0] += seconds

    queue = TicketQueue(MemoryTicketStore(), clock=Clock(), new_id=lambda: f"E{next(ids)}")
    ticket = await queue.request_approval(
        call(), ApprovalInfo("tc-9", "wire_money", "{}"), expires_in=5
    )
    console = Console(ConsoleConfig(session_secret="s"), OPERATORS, MemoryFeed(), Desk(queue))
    with TestClient(console.app(), base_url="http://c.test") as client:
        alice = Browser(client).log_in("alice")
        now[0] += 6
        code, text = alice.post(f"/tickets/{ticket.ticket_id}/decide", outcome="approved")
    assert code == 409
    assert "expired" in text
    assert (await queue.get("acme", ticket.ticket_id)).state is State.EXPIRED


async def test_the_operator_ends_the_call(queue: TicketQueue, browsers: dict[str, Browser]) -> None:
    ticket_id = await escalate(queue)
    alice = browsers["alice"]
    assert alice.post(f"/tickets/{ticket_id}/accept")[0] == 303
    code, _ = alice.post(f"/tickets/{ticket_id}/handback", note="caller said bye", end_call="true")
    assert code == 303
    ended = await queue.get("acme", ticket_id)
    assert ended.state is State.ENDED
    _, page = alice.get("/queue")
    assert ticket_id not in page  # closed tickets leave the queue


async def test_the_callback_the_caller_asked_for_is_on_the_queue_and_the_panel(
    queue: TicketQueue, browsers: dict[str, Browser]
) -> None:
    asked = await escalate(queue)
    declined = await escalate(queue, call_id="CA2")
    for ticket_id in (asked, declined):  # the gateway records the offer when it asks
        await queue.offer_callback("acme", ticket_id, accepted=False)
    await queue.offer_callback("acme", asked, accepted=True, number="4155550100")
    alice = browsers["alice"]
    _, page = alice.get("/queue")
    assert "<b>Call back</b> 4155550100" in page
    assert "Callback offered at" in page  # the other caller did not accept
    _, panel = alice.get(f"/tickets/{asked}")
    assert 'data-accepted="yes"' in panel
    assert "4155550100" in panel
    # taking it over twice (a retried click after a lost reply) is the same take-over
    assert alice.post(f"/tickets/{asked}/accept")[0] == 303
    assert alice.post(f"/tickets/{asked}/accept")[0] == 303
    _, panel = alice.get(f"/tickets/{asked}")
    assert 'id="transcript"' in panel  # the live lines of the call while the operator talks
    assert f'data-stream="/calls/{call().call_id}/stream"' in panel


async def test_the_queue_watch_is_subscribed_on_entering(queue: TicketQueue) -> None:
    """The queue page's stream says ``ready`` inside ``desk.changes``: a ticket made between
    entering and the page's list is both in the list and an event; none is missed."""
    desk = Desk(queue, join_secret=SECRET)
    before = await queue.escalate(CallRef("acme", "CA-0"), EscalationInfo("caller_request"))
    async with desk.changes("acme") as changes:
        made = await queue.request_approval(
            CallRef("acme", "CA-1"), ApprovalInfo("tc-1", "issue_refund", '{"amount": 1}')
        )
        await queue.escalate(CallRef("globex", "CA-2"), EscalationInfo("caller_request"))
        listed = {t.ticket_id for t in await desk.open_tickets("acme")}
        assert {before.ticket_id, made.ticket_id} <= listed
        kinds = aiter(changes)
        assert await asyncio.wait_for(anext(kinds), 5) is made.kind  # not the one before
        with pytest.raises(TimeoutError):  # nor globex's
            await asyncio.wait_for(anext(kinds), 0.2)
