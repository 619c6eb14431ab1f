"""Every reply source the gateway records goes on the wire as its own events.proto value."""

from __future__ import annotations

import pytest

from trunkline.gateway.core.replies import ReplySource
from trunkline.gateway.sink import REPLY_SOURCES
from trunkline.proto.events.v1 import events_pb2

pytestmark = pytest.mark.unit


def test_each_reply_source_has_its_own_wire_value() -> None:
    assert set(REPLY_SOURCES) == {s.value for s in ReplySource}
    assert events_pb2.REPLY_SOURCE_UNSPECIFIED not in REPLY_SOURCES.values()
    assert len(set(REPLY_SOURCES.values())) == len(REPLY_SOURCES)
    assert REPLY_SOURCES["tool"] == events_pb2.REPLY_SOURCE_TOOL
