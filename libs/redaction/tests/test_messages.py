import pytest

from trunkline.proto.common.v1 import tool_pb2
from trunkline.proto.events.v1 import events_pb2
from trunkline.redaction.messages import redact_attributes, redact_message
from trunkline.redaction.pii import redact, sensitive_digits

pytestmark = pytest.mark.unit


def test_every_text_field_of_an_event_is_redacted_and_ids_are_kept() -> None:
    event = events_pb2.TurnCompleted(
        event_id="4111111111111111",
        caller_transcript="my card is four one one one one one one one one one one one one one "
        "one one",
        agent_reply="I read 4111 1111 1111 1111, is that right?",
        tool_calls=[
            events_pb2.ToolCallRecord(
                call=tool_pb2.ToolCall(
                    id="c1", name="take_payment", arguments_json='{"card":"4111111111111111"}'
                ),
                result_json='{"ok":true,"email":"dana@example.com"}',
            )
        ],
    )
    event.context.tenant_id = "acme"
    event.context.caller.address = "+14155550132"
    redact_message(event)
    assert event.caller_transcript == "my card is [CARD]"
    assert event.agent_reply == "I read [CARD], is that right?"
    assert event.tool_calls[0].call.arguments_json == '{"card":"[CARD]"}'
    assert event.tool_calls[0].call.name == "take_payment"
    assert event.tool_calls[0].result_json == '{"ok":true,"email":"[EMAIL]"}'
    assert event.context.caller.address == "[PHONE]"
    assert event.event_id == "4111111111111111"  # an id, not caller words
    assert "4111" not in str(event).replace('event_id: "4111111111111111"', "")


def test_attribute_maps() -> None:
    out = redact_attributes({"turn.user_text": "call 415-555-0132", "call.id": "415-555-0132",
                             "n": 4111111111111111, "words": ["jo@example.com"]})  # fmt: skip
    assert out == {"turn.user_text": "call [PHONE]", "call.id": "415-555-0132",
                   "n": 4111111111111111, "words": ["[EMAIL]"]}  # fmt: skip


def test_a_number_found_in_one_field_is_redacted_where_another_repeats_its_bare_digits() -> None:
    """The caller's words tell it is a card; the agent's reply repeats the digits bare."""
    event = events_pb2.TurnCompleted(
        caller_transcript="My card number is 4539. 14880, 64667.",
        agent_reply_generated="Thanks. 4539, 14880, 64667 is noted. We open at 9.",
        guard_interventions=[events_pb2.GuardIntervention(clause="4539, 14880, 64667 is noted.")],
    )
    redact_message(event)
    assert event.caller_transcript == "My card number is [CARD]."
    assert event.agent_reply_generated == "Thanks. [CARD], [CARD], [CARD] is noted. We open at 9."
    assert event.guard_interventions[0].clause == "[CARD], [CARD], [CARD] is noted."
    alone = events_pb2.TurnCompleted(agent_reply_generated="Thanks. 4539, 14880, 64667 is noted.")
    assert redact_message(alone).agent_reply_generated.startswith("Thanks. 4539")  # no context
    known = sensitive_digits("My card number is 4539. 14880, 64667.")  # the call's, kept
    assert redact(alone.agent_reply_generated, known) == "Thanks. [CARD], [CARD], [CARD] is noted."
