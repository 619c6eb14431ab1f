"""Which requests the guard refuses for a missing tenant."""

from __future__ import annotations

import pytest

from trunkline.proto.common.v1 import call_pb2
from trunkline.proto.hitl.v1 import hitl_pb2
from trunkline.proto.stt.v1 import stt_pb2
from trunkline.runtime.validation import tenant_problem

pytestmark = pytest.mark.unit


def test_missing_context_is_refused_with_the_field_path() -> None:
    problem = tenant_problem(hitl_pb2.EscalateRequest())
    assert problem is not None
    assert "trunkline.hitl.v1.EscalateRequest.context.tenant_id is required" in problem


def test_empty_tenant_is_refused() -> None:
    request = hitl_pb2.DecideRequest(context=call_pb2.CallContext(call_id="c1"), ticket_id="t")
    assert tenant_problem(request) is not None


def test_request_with_a_tenant_passes() -> None:
    request = hitl_pb2.EscalateRequest(context=call_pb2.CallContext(tenant_id="acme"))
    assert tenant_problem(request) is None


def test_stream_envelope_is_checked_on_its_own_context() -> None:
    config = stt_pb2.RecognitionConfig(language="en")
    assert tenant_problem(stt_pb2.StreamingRecognizeRequest(config=config)) is not None
    ok = stt_pb2.StreamingRecognizeRequest(
        context=call_pb2.CallContext(tenant_id="acme"), config=config
    )
    assert tenant_problem(ok) is None


def test_message_holding_a_context_one_level_down_is_checked() -> None:
    ticket = hitl_pb2.Ticket(ticket_id="t1")
    assert tenant_problem(hitl_pb2.EscalateResponse(ticket=ticket)) is not None
    assert tenant_problem(hitl_pb2.EscalateResponse()) is None  # unset: nothing to check


def test_messages_without_a_context_and_non_messages_pass() -> None:
    assert tenant_problem(stt_pb2.RecognitionConfig()) is None
    assert tenant_problem(b"raw bytes") is None
