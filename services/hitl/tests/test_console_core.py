"""The console's pure parts: the operators file, the latency waterfall, the calls board."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration

from trunkline.hitl.console.board import ENDED, ESCALATED, LIVE, WITH_OPERATOR, Board, turn_view
from trunkline.hitl.console.operators import (
    OperatorBook,
    OperatorsFileError,
    hash_password,
    verify_password,
)
from trunkline.hitl.console.waterfall import LABEL_WIDTH, Stage, waterfall
from trunkline.proto.common.v1 import call_pb2, timing_pb2
from trunkline.proto.events.v1 import events_pb2

pytestmark = pytest.mark.unit

HASH = hash_password("correct horse")


def test_password_hash_verifies_only_its_password() -> None:
    assert verify_password("correct horse", HASH)
    assert not verify_password("correct horse ", HASH)
    assert not verify_password("", HASH)
    assert hash_password("correct horse") != HASH  # a fresh salt each time
    assert not verify_password("correct horse", "plain-text-password")
    with pytest.raises(ValueError, match="empty"):
        hash_password("")


def test_operators_file_loads_and_authenticates() -> None:
    book = OperatorBook.from_yaml(
        f"operators:\n"
        f"  - id: alice\n    tenant: acme\n    name: Alice\n    password_hash: {HASH}\n"
        f"  - id: bob\n    tenant: globex\n    password_hash: {HASH}\n"
    )
    assert len(book) == 2
    alice = book.authenticate("alice", "correct horse")
    assert alice is not None
    assert (alice.tenant, alice.display_name) == ("acme", "Alice")
    bob = book.get("bob")
    assert bob is not None
    assert bob.display_name == "bob"
    assert book.authenticate("alice", "wrong") is None
    assert book.authenticate("mallory", "correct horse") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("operators: [", "ops.yaml: not valid YAML"),
        ("- a\n- b\n", "ops.yaml:1: expected a mapping"),
        ("operators: {}\n", "ops.yaml:1: 'operators' must be a list"),
        ("users: []\n", "ops.yaml:1: unknown keys ['users']"),
        (
            "operators:\n  - id: a\n    tenant: acme\n",
            "ops.yaml:2: operator is missing password_hash",
        ),
        (
            f"operators:\n  - id: a\n    tenant: acme\n    password_hash: {HASH}\n    role: x\n",
            "ops.yaml:5: unknown operator field 'role'",
        ),
        (
            "operators:\n  - id: a\n    tenant: acme\n    password_hash: hunter2\n",
            "ops.yaml:2: operator 'a': password_hash must look like scrypt",
        ),
        (
            f"operators:\n  - id: a\n    tenant: ac.me\n    password_hash: {HASH}\n",
            "ops.yaml:2: tenant 'ac.me' may not contain",
        ),
        (
            f"operators:\n  - id: a\n    tenant: acme\n    password_hash: {HASH}\n"
            f"  - id: a\n    tenant: globex\n    password_hash: {HASH}\n",
            "ops.yaml:5: operator 'a' already defined at line 2",
        ),
        ("operators:\n  - id: ''\n    tenant: acme\n", "ops.yaml:2: id must be non-empty text"),
    ],
)
def test_a_bad_operators_file_names_file_and_line(text: str, message: str) -> None:
    with pytest.raises(OperatorsFileError) as caught:
        OperatorBook.from_yaml(text, "ops.yaml")
    assert message in str(caught.value)


def test_waterfall_lays_stages_end_to_end_in_pipeline_order() -> None:
    drawn = waterfall(
        [
            Stage("tts.time_to_first_audio", 0.080),
            Stage("stt.final", 0.100),
            Stage("turn.endpointing", 0.400),
            Stage("llm.prompt_compile", 0.010),
            Stage("llm.time_to_first_token", 0.120),
            Stage("context.resolve", 0.050),
            Stage("turn.response", 0.600),
            Stage("guard", 0.001),  # not a waterfall stage
        ]
    )
    names = [bar.stage for bar in drawn.bars]
    assert names == [
        "turn.endpointing",
        "stt.final",
        "context.resolve",
        "llm.prompt_compile",
        "llm.time_to_first_token",
        "tts.time_to_first_audio",
        "turn.response",
    ]
    starts = {bar.stage: round(bar.start_ms) for bar in drawn.bars}
    assert starts == {
        "turn.endpointing": 0,
        "stt.final": 400,
        "context.resolve": 500,
        "llm.prompt_compile": 550,  # inside the LLM's first-token bar
        "llm.time_to_first_token": 550,
        "tts.time_to_first_audio": 670,
        "turn.response": 0,
    }
    assert drawn.scale_ms == pytest.approx(750)
    total = drawn.bars[-1]
    assert total.total
    assert total.x == LABEL_WIDTH
    # widths are proportional to durations; bars stay inside the picture
    stt = drawn.bars[1]
    endpointing = drawn.bars[0]
    assert stt.width / endpointing.width == pytest.approx(0.25)
    assert all(bar.x + bar.width <= drawn.width for bar in drawn.bars)
    assert drawn.height > len(drawn.bars) * drawn.bar_height


def test_waterfall_uses_measured_starts_when_every_stage_has_one() -> None:
    drawn = waterfall(
        [Stage("stt.final", 0.1, started_at=100.0), Stage("context.resolve", 0.05, 100.02)]
    )
    assert [round(bar.start_ms) for bar in drawn.bars] == [0, 20]  # overlapping, as measured
    assert waterfall([]).empty


def call_context(tenant: str, call_id: str, turn: int = 0) -> call_pb2.CallContext:
    return call_pb2.CallContext(
        tenant_id=tenant,
        call_id=call_id,
        agent=call_pb2.AgentRef(name="acme-dental", version="v3"),
        caller=call_pb2.Caller(address="+15550001"),
        turn_index=turn,
    )


def ms(value: float) -> Duration:
    duration = Duration()
    duration.FromMilliseconds(int(value))
    return duration


def turn(tenant: str, call_id: str, index: int, caller: str) -> events_pb2.TurnCompleted:
    return events_pb2.TurnCompleted(
        context=call_context(tenant, call_id, index),
        caller_transcript=caller,
        agent_reply="We open at nine.",
        response_time=ms(640),
        reply_source=events_pb2.REPLY_SOURCE_KNOWLEDGE,
        stages=[
            timing_pb2.StageTiming(stage="stt.final", duration=ms(120)),
            timing_pb2.StageTiming(stage="turn.response", duration=ms(640)),
        ],
    )


def test_board_follows_one_tenants_calls() -> None:
    board = Board("acme")
    started = events_pb2.CallStarted(
        context=call_context("acme", "CA1"), transport=call_pb2.TRANSPORT_TWILIO
    )
    started.occurred_at.FromSeconds(1_700_000_000)
    row = board.apply(started)
    assert row is not None
    assert (row.state, row.transport, row.agent, row.caller) == (
        LIVE,
        "twilio",
        "acme-dental",
        "+15550001",
    )
    assert board.apply(events_pb2.CallStarted(context=call_context("globex", "CA2"))) is None
    row = board.apply(turn("acme", "CA1", 1, "when are you open"))
    assert row is not None
    assert (row.turns, row.last_caller, row.last_response_ms) == (1, "when are you open", 640)
    escalated = board.apply(
        events_pb2.EscalationRequested(context=call_context("acme", "CA1"), ticket_id="T1")
    )
    assert escalated is not None
    assert (escalated.state, escalated.tickets) == (ESCALATED, ("T1",))
    accepted = board.apply(
        events_pb2.EscalationUpdated(context=call_context("acme", "CA1"), change="accepted")
    )
    assert accepted is not None
    assert accepted.state == WITH_OPERATOR
    ended = board.apply(
        events_pb2.CallEnded(
            context=call_context("acme", "CA1"), reason=events_pb2.END_REASON_CALLER_HANGUP
        )
    )
    assert ended is not None
    assert (ended.state, ended.end_reason, ended.live) == (ENDED, "caller hangup", False)
    late = board.apply(
        events_pb2.EscalationUpdated(context=call_context("acme", "CA1"), change="handed_back")
    )
    assert late is not None
    assert late.state == ENDED  # an ended call stays ended
    board.apply(events_pb2.CallStarted(context=call_context("acme", "CA3")))
    assert [r.call_id for r in board.rows()] == ["CA3", "CA1"]  # live first
    assert set(board.calls) == {"CA1", "CA3"}


def test_turn_view_carries_transcript_and_waterfall() -> None:
    view = turn_view(turn("acme", "CA1", 2, "do you take insurance"))
    assert (view.index, view.caller, view.agent, view.source) == (
        2,
        "do you take insurance",
        "We open at nine.",
        "knowledge",
    )
    assert view.response_ms == pytest.approx(640)
    assert [bar.stage for bar in view.waterfall.bars] == ["stt.final", "turn.response"]
