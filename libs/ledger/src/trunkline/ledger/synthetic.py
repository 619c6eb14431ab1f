"""Synthetic calls as ledger facts (seeded, deterministic): for the report benchmark and tests.

Each call has 1-12 turns of plausible usage (caller audio, prompt/cached/completion tokens on
the turns the LLM answered, characters spoken, now and then a tool call) and ends one of the
ways real calls end: a goodbye after answers, the qualifying tool, an escalation, a hang-up
mid-conversation.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal

from trunkline.ledger.facts import CallEndFact, CallKey, EscalationFact, Fact, TurnFact
from trunkline.ledger.outcomes import EndReason
from trunkline.ledger.pricing import Usage

SOURCES = ("llm", "knowledge", "cache", "deflection", "small_talk")


def synthetic_calls(
    count: int,
    *,
    tenant: str,
    start: datetime,
    versions: tuple[tuple[str, str], ...] = (("acme-dental", "1.0.0"), ("acme-dental", "1.1.0")),
    qualifying_tool: str = "book_appointment",
    seed: int = 7,
) -> Iterator[Fact]:
    rng = random.Random(seed)
    for index in range(count):
        agent, version = versions[index % len(versions)]
        key = CallKey(tenant, f"synthetic-{seed}-{index:06d}", agent, version)
        at = start + timedelta(seconds=index * 7)
        ending = rng.choices(("goodbye", "qualified", "escalated", "hangup"), weights=(5, 3, 1, 2))[
            0
        ]
        turns = rng.randint(1, 12)
        for turn in range(turns):
            last = turn == turns - 1
            at += timedelta(seconds=rng.randint(4, 20))
            source = rng.choice(SOURCES)
            tools: tuple[str, ...] = ()
            if last and ending == "qualified":
                source, tools = "llm", (qualifying_tool,)
            elif rng.random() < 0.1:
                tools = ("lookup_account",)
            llm = source == "llm"
            prompt = rng.randint(300, 1500) if llm else 0
            yield TurnFact(
                event_id=str(uuid.UUID(int=rng.getrandbits(128))),
                occurred_at=at,
                call=key,
                turn_index=turn,
                usage=Usage(
                    stt_seconds=Decimal(rng.randint(800, 9000)).scaleb(-3),
                    prompt_tokens=prompt,
                    cached_tokens=rng.randint(0, prompt) if llm else 0,
                    completion_tokens=rng.randint(10, 120) if llm else 0,
                    tts_characters=rng.randint(20, 300),
                    tools=tools,
                ),
                reply_source="goodbye" if last and ending == "goodbye" else source,
                intent="goodbye" if last and ending == "goodbye" else "question",
                hang_up=last and ending == "goodbye",
                succeeded_tools=tools,
            )
        if ending == "escalated":
            yield EscalationFact(str(uuid.UUID(int=rng.getrandbits(128))), at, key)
        reason = {
            "goodbye": EndReason.AGENT_HANGUP,
            "qualified": EndReason.CALLER_HANGUP,
            "escalated": EndReason.TRANSFERRED,
            "hangup": EndReason.CALLER_HANGUP,
        }[ending]
        duration = Decimal(rng.randint(turns * 8000, turns * 25000)).scaleb(-3)
        yield CallEndFact(
            event_id=str(uuid.UUID(int=rng.getrandbits(128))),
            occurred_at=at + timedelta(seconds=2),
            call=key,
            end_reason=reason,
            duration_seconds=duration,
            turn_count=turns,
        )
