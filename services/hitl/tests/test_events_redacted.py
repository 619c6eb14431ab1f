"""The hitl service's ticket events are redacted like the gateway's (issue 13): the summary,
detail, justification, notes, tool arguments and caller address that go on the bus hold no
card, account, phone or e-mail, while the ticket the operator works from keeps them."""

from __future__ import annotations

import json
import re

import pytest

from trunkline.bus.streams import EVENTS
from trunkline.hitl.core.tickets import ApprovalInfo, CallRef, EscalationInfo, Line
from trunkline.hitl.events import TicketEvents
from trunkline.hitl.fakes import MemoryTicketStore
from trunkline.hitl.queue import TicketQueue
from trunkline.proto.events.v1 import events_pb2
from trunkline.testing.clock import FakeClock
from trunkline.testing.fakes import FakeBus
from trunkline.testing.leaks import without_ids

pytestmark = pytest.mark.unit

CALL = CallRef("acme", "call-9", caller_address="+14155550132", agent_name="support")
CARD_SAID = "My card is 4111 1111 1111 1111 and it was charged twice, I want a person."
LEAKS = re.compile(r"4111|4155550132|555[ -]?0132|dana@example\.com|12345678", re.IGNORECASE)


async def test_ticket_events_on_the_bus_hold_no_pii() -> None:
    clock = FakeClock(1_000.0)
    bus = FakeBus()
    await bus.ensure_stream(EVENTS)
    queue = TicketQueue(MemoryTicketStore(), clock=clock, listeners=[TicketEvents(bus, clock.now)])
    await queue.start()
    try:
        escalation = await queue.escalate(
            CALL,
            EscalationInfo("caller_request", detail="call back on 415 555 0132"),
            [Line("caller", CARD_SAID), Line("agent", "Let me get someone for you.")],
        )
        await queue.accept("acme", escalation.ticket_id, "op-7")
        await queue.hand_back(
            "acme", escalation.ticket_id, "op-7", note="refund sent to dana@example.com"
        )
        approval = await queue.request_approval(
            CALL,
            ApprovalInfo(
                "tc-1",
                "refund",
                json.dumps({"account_number": "12345678", "amount_usd": 40}),
                justification="refund to account 12345678",
            ),
        )
        edited = json.dumps({"account_number": "12345678", "amount_usd": 35})
        await queue.approve("acme", approval.ticket_id, "op-7", note="ok", arguments_json=edited)
        kept = await queue.get("acme", escalation.ticket_id)
    finally:
        await queue.close()

    kinds = [p.subject.split(".")[2] for p in bus.published]
    assert {"escalation", "escalation_updated", "approval", "approval_decided"} <= set(kinds)
    for published in bus.published:
        text = published.data.decode("utf-8", "replace")
        assert not LEAKS.search(without_ids(text)), (published.subject, text)
    requested = events_pb2.EscalationRequested.FromString(
        bus.on("trunkline.events.escalation.>")[0].data
    )
    assert "[CARD]" in requested.summary  # the summary quotes the caller, redacted
    assert requested.detail == "call back on [PHONE]"
    assert requested.context.caller.address == "[PHONE]"
    # identifiers are not caller words: they stay as they are
    assert (requested.ticket_id, requested.context.tenant_id) == (escalation.ticket_id, "acme")
    assert requested.context.call_id == "call-9"
    decided = events_pb2.ApprovalDecided.FromString(
        bus.on("trunkline.events.approval_decided.>")[0].data
    )
    assert json.loads(decided.arguments_json)["amount_usd"] == 35
    assert decided.operator_id == "op-7"
    handed = [
        events_pb2.EscalationUpdated.FromString(p.data)
        for p in bus.on("trunkline.events.escalation_updated.>")
    ]
    assert any(u.note == "refund sent to [EMAIL]" for u in handed)
    # the ticket (what the operator reads to help the caller) keeps what was said but the card
    assert kept.transcript[0].text == CARD_SAID.replace("4111 1111 1111 1111", "[CARD]")
    assert kept.call.caller_address == "+14155550132"
