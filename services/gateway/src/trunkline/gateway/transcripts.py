"""Unredacted transcripts, only where the tenant's policy allows (issue 13).

Events, spans and logs carry redacted text; a tenant whose ``transcripts`` policy says
``store_unredacted: true`` also gets each turn as said, sealed with its own key (AES-256-GCM) in
the transcript store (``GATEWAY_TRANSCRIPTS_URL``), kept ``retention_days`` and deleted with
``trunkline calls purge --call-id …``. :class:`TranscriptSink` wraps the real sink; a store that
fails is logged (without the text) and never breaks the call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from trunkline.gateway.core.events import Message, State
from trunkline.gateway.peers.hitl import Line
from trunkline.gateway.peers.types import CallInfo
from trunkline.gateway.records import CallSink, CallSummary, TurnRecord
from trunkline.redaction.transcripts import TranscriptStore, parse_key

log = logging.getLogger(__name__)


class TranscriptPolicy(BaseModel):
    """A tenant's transcript policy (in its tenants-file entry, a Secret in a cluster)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    store_unredacted: bool = False
    retention_days: float = Field(default=30.0, gt=0, le=3650)
    key: SecretStr = Field(
        default=SecretStr(""), description="32 bytes, URL-safe base64 (trunkline calls new-key)"
    )

    @model_validator(mode="after")
    def _key_when_stored(self) -> Self:
        if self.store_unredacted:
            parse_key(self.key.get_secret_value(), "this tenant")  # a clear error, no key shown
        return self

    @property
    def key_bytes(self) -> bytes:
        return parse_key(self.key.get_secret_value(), "this tenant")


def turn_document(record: TurnRecord) -> dict[str, Any]:
    """What is kept of a turn: the words both ways and the tool calls, as said."""
    return {
        "agent_version": record.call.agent_version,
        "caller": record.user_text,
        "agent": record.agent_text,
        "generated": record.generated_text,
        "reply_source": record.reply_source,
        "tools": [
            {"name": t.name, "arguments": t.arguments_json, "status": t.status.value,
             "result": t.result_json}
            for t in record.tool_calls
        ],
    }  # fmt: skip


class TranscriptSink(CallSink):
    """Forwards everything to ``inner``; stores allowed tenants' turns unredacted, encrypted."""

    def __init__(
        self,
        inner: CallSink,
        store: TranscriptStore,
        policies: Mapping[str, TranscriptPolicy],
        now: Callable[[], float] = time.time,
    ) -> None:
        self.inner = inner
        self.store = store
        self.policies = dict(policies)
        self.now = now

    async def call_started(self, call: CallInfo, transport: str) -> None:
        await self.inner.call_started(call, transport)

    async def state_changed(self, call: CallInfo, state: State, history: list[Message]) -> None:
        await self.inner.state_changed(call, state, history)

    async def turn_completed(self, record: TurnRecord) -> None:
        policy = self.policies.get(record.call.tenant)
        if policy is not None and policy.store_unredacted:
            try:
                await asyncio.to_thread(
                    self.store.append,
                    record.call.tenant,
                    record.call.call_id,
                    record.turn_id,
                    turn_document(record),
                    policy.key_bytes,
                    now=self.now(),
                    retention_s=policy.retention_days * 86400.0,
                )
            except Exception as exc:  # the call goes on; the text is not in the message
                log.warning(
                    "call %s: turn %d not stored in the transcript store: %s",
                    record.call.call_id,
                    record.turn_id,
                    type(exc).__name__,
                )
        await self.inner.turn_completed(record)

    async def handoff_line(
        self, call: CallInfo, ticket_id: str, operator_id: str, line: Line, spoken_at: float
    ) -> None:
        await self.inner.handoff_line(call, ticket_id, operator_id, line, spoken_at)

    async def call_ended(self, summary: CallSummary) -> None:
        try:
            await asyncio.to_thread(self.store.purge_expired, self.now())
        except Exception as exc:
            log.warning("transcript retention purge failed: %s", type(exc).__name__)
        await self.inner.call_ended(summary)


def with_transcripts(
    sink: CallSink, url: str, policies: Mapping[str, TranscriptPolicy]
) -> CallSink:
    """``sink`` wrapped in a :class:`TranscriptSink` when a store URL is set and some tenant
    allows it; ``sink`` itself otherwise."""
    if not url or not any(p.store_unredacted for p in policies.values()):
        return sink
    return TranscriptSink(sink, TranscriptStore(url), policies)
