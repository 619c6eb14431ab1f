"""The latency knobs in the gateway's settings become the turn machine's configuration."""

from __future__ import annotations

from typing import Any, cast

import pytest
from opentelemetry.trace import NoOpTracer
from pydantic import ValidationError

from trunkline.gateway.app import Gateway, PeerChannels
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.profile import parse_profile
from trunkline.gateway.records import CallSink
from trunkline.gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit

PROFILE = parse_profile(
    "name: a\nversion: '1'\nsystem_prompt: You help.\ngreeting: Hi.\n"
    "tools:\n  - {name: t, description: d, endpoint: 'http://x/t', allowed_roles: [caller]}\n"
)


def gateway(**settings: Any) -> Gateway:
    return Gateway(
        GatewaySettings(**settings),
        {"a": PROFILE},
        cast(CallSink, None),  # not used by the configuration methods
        cast(PeerChannels, None),
        clock=SystemClock(),
        tracer=NoOpTracer(),
    )


def test_endpointing_and_speculation_reach_the_turn_machine() -> None:
    turn = gateway(endpoint_ms=300, speculate_after_ms=160).session_config(PROFILE).turn
    assert turn.endpoint.endpoint_ms == 300
    assert turn.speculate_after_ms == 160
    assert gateway().session_config(PROFILE).turn.speculate_after_ms == 20  # first silent frame


def test_the_level_rules_reach_the_endpointer_and_zero_turns_them_off() -> None:
    default = gateway().session_config(PROFILE).turn.endpoint
    assert (default.quiet_dbfs, default.loud_dbfs) == (-50.0, -30.0)
    tuned = gateway(quiet_dbfs=-55, loud_dbfs=-25).session_config(PROFILE).turn.endpoint
    assert (tuned.quiet_dbfs, tuned.loud_dbfs) == (-55.0, -25.0)
    off = gateway(quiet_dbfs=0, loud_dbfs=0).session_config(PROFILE).turn.endpoint
    assert (off.quiet_dbfs, off.loud_dbfs) == (None, None)
    with pytest.raises(ValidationError):
        GatewaySettings(quiet_dbfs=3)


def test_speculation_can_be_turned_off() -> None:
    turn = gateway(speculative_start=False).session_config(PROFILE).turn
    assert turn.speculate_after_ms is None


def test_speculation_must_start_before_the_endpoint() -> None:
    with pytest.raises(ValidationError, match="speculate_after_ms must be below endpoint_ms"):
        GatewaySettings(endpoint_ms=200, speculate_after_ms=200)


def test_tools_need_the_apps_http_client() -> None:
    assert gateway().tools(PROFILE) is None  # no client: nothing can run
