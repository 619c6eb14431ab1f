"""The ledger in a SQL database: facts in, usage/cost/call rows out, idempotent by event id.

:meth:`LedgerStore.apply` writes a batch of facts in one transaction. An event applied before
(its id is in ``processed_events``) is skipped, so a redelivered message changes nothing. A
tenant without a price table still gets its usage and call rows (nothing is lost); its cost
lines are missing, logged with the tenant's name, and counted in :attr:`Applied.unpriced`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from trunkline.ledger.facts import (
    CallEndFact,
    CallKey,
    CostFact,
    EscalationFact,
    Fact,
    TurnFact,
    kind_of,
)
from trunkline.ledger.models import CallRow, CostRow, PriceTableRow, ProcessedEvent, UsageRow
from trunkline.ledger.outcomes import (
    ANSWER_SOURCES,
    CallFacts,
    Decision,
    EndReason,
    QualifiedRule,
    decide,
)
from trunkline.ledger.prices import PriceTable, PriceTableError, PriceVersion
from trunkline.ledger.pricing import CostLine, Usage, price, to_picos

log = logging.getLogger(__name__)

RuleFor = Callable[[str, str], QualifiedRule]
"""(agent name, agent version) -> the agent's qualified-outcome rule."""


def no_rule(_agent: str, _version: str) -> QualifiedRule:
    return QualifiedRule()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``). SQLite gets
    foreign keys on and a short busy timeout (a locked database is a failed write, retried by
    the worker, not a stall)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 1.0})

        @event.listens_for(engine, "connect")
        def _pragmas(connection: object, _record: object) -> None:
            cursor = connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


@dataclass(frozen=True, slots=True)
class Applied:
    """What one newly applied fact cost (empty lines for escalations), for the metrics."""

    call: CallKey
    kind: str
    lines: tuple[CostLine, ...] = ()
    currency: str = ""
    decision: Decision | None = None
    unpriced: bool = False


@dataclass
class LedgerStore:
    engine: Engine
    prices: Mapping[str, PriceTable]
    rule_for: RuleFor = no_rule
    _price_ids: dict[tuple[str, str], int] = field(default_factory=dict)

    # -- price tables ---------------------------------------------------------------------

    def sync_prices(self) -> None:
        """Store every loaded price version; a version whose rates changed under the same
        label is an error (labels are immutable: give changed rates a new version)."""
        with Session(self.engine) as session, session.begin():
            for table in self.prices.values():
                for version in table.versions:
                    rates = _rates_json(version)
                    row = session.scalar(
                        select(PriceTableRow).where(
                            PriceTableRow.tenant == table.tenant,
                            PriceTableRow.version == version.version,
                        )
                    )
                    if row is None:
                        row = PriceTableRow(
                            tenant=table.tenant,
                            version=version.version,
                            effective_from=version.effective_from,
                            currency=table.currency,
                            rates_json=rates,
                            source=table.source,
                        )
                        session.add(row)
                        session.flush()
                    elif row.rates_json != rates or row.currency != table.currency:
                        raise PriceTableError(
                            f"{table.source}:1: version {version.version!r} of tenant "
                            f"{table.tenant!r} was stored with other rates; give the new rates "
                            "a new version"
                        )
                    self._price_ids[(table.tenant, version.version)] = row.id

    # -- facts ----------------------------------------------------------------------------

    def apply(self, facts: Sequence[Fact]) -> list[Applied]:
        """Apply ``facts`` in one transaction; those already applied are skipped. If another
        writer applied one meanwhile (a unique key clashes), each is retried on its own."""
        try:
            return self._apply(facts)
        except IntegrityError:
            if len(facts) == 1:
                return []
            applied: list[Applied] = []
            for fact in facts:
                try:
                    applied.extend(self._apply([fact]))
                except IntegrityError:
                    continue
            return applied

    def _apply(self, facts: Sequence[Fact]) -> list[Applied]:
        applied: list[Applied] = []
        with Session(self.engine, autoflush=False) as session, session.begin():
            ids = [fact.event_id for fact in facts]
            seen = set(
                session.scalars(
                    select(ProcessedEvent.event_id).where(ProcessedEvent.event_id.in_(ids))
                )
            )
            calls = self._calls(session, facts)
            for fact in facts:
                if fact.event_id in seen:
                    continue
                seen.add(fact.event_id)
                session.add(
                    ProcessedEvent(
                        event_id=fact.event_id,
                        kind=kind_of(fact),
                        tenant=fact.call.tenant,
                        call_id=fact.call.call_id,
                        processed_at=datetime.now(UTC),
                    )
                )
                applied.append(self._one(session, calls, fact))
        return applied

    def _calls(self, session: Session, facts: Sequence[Fact]) -> dict[tuple[str, str], CallRow]:
        call_ids = {fact.call.call_id for fact in facts}
        found = session.scalars(select(CallRow).where(CallRow.call_id.in_(call_ids)))
        return {(call.tenant, call.call_id): call for call in found}

    def _one(self, session: Session, calls: dict[tuple[str, str], CallRow], fact: Fact) -> Applied:
        kind = kind_of(fact)
        if fact.call.shadow:  # a candidate's shadow turn: priced, but the call is the live one's
            if not isinstance(fact, TurnFact | CostFact):
                return Applied(fact.call, kind)
            index = fact.turn_index if isinstance(fact, TurnFact) else None
            priced = self._usage(session, fact, fact.usage, index)
            return Applied(fact.call, kind, priced[0], priced[1], None, priced[2])
        call = self._call(session, calls, fact.call, fact.occurred_at)
        lines: tuple[CostLine, ...] = ()
        currency = ""
        unpriced = False
        match fact:
            case TurnFact():
                call.turns = max(call.turns, fact.turn_index + 1)
                if fact.reply_source in ANSWER_SOURCES:
                    call.answered_turns += 1
                if fact.intent == "goodbye" or fact.reply_source == "goodbye" or fact.hang_up:
                    call.goodbye = True
                if fact.succeeded_tools:
                    names = set(filter(None, call.succeeded_tools.split(","))) | set(
                        fact.succeeded_tools
                    )
                    call.succeeded_tools = ",".join(sorted(names))
                lines, currency, unpriced = self._usage(session, fact, fact.usage, fact.turn_index)
            case CallEndFact():
                call.ended_at = fact.occurred_at
                call.end_reason = fact.end_reason.value
                call.duration_ms = int(fact.duration_seconds.scaleb(3))
                call.turns = max(call.turns, fact.turn_count)
                call.marked_qualified = call.marked_qualified or fact.marked_qualified
                usage = Usage(telephony_seconds=fact.duration_seconds)
                lines, currency, unpriced = self._usage(session, fact, usage, None)
            case EscalationFact():
                call.escalated = True
            case CostFact():
                lines, currency, unpriced = self._usage(session, fact, fact.usage, None)
        decision = self._decide(call)
        return Applied(fact.call, kind, lines, currency, decision, unpriced)

    def _call(
        self, session: Session, calls: dict[tuple[str, str], CallRow], key: CallKey, at: datetime
    ) -> CallRow:
        call = calls.get((key.tenant, key.call_id))
        if call is None:
            call = CallRow(
                tenant=key.tenant,
                call_id=key.call_id,
                agent_name=key.agent_name,
                agent_version=key.agent_version,
                shadow=key.shadow,
                started_at=at,
                turns=0,
                answered_turns=0,
                goodbye=False,
                escalated=False,
                succeeded_tools="",
                marked_qualified=False,
                duration_ms=0,
                qualified=False,
            )
            session.add(call)
            calls[(key.tenant, key.call_id)] = call
        elif at < call.started_at:
            call.started_at = at
        return call

    def _decide(self, call: CallRow) -> Decision | None:
        if call.ended_at is None and not call.escalated:
            return None
        facts = CallFacts(
            end_reason=EndReason(call.end_reason) if call.end_reason else EndReason.UNKNOWN,
            escalated=call.escalated,
            answered_turns=call.answered_turns,
            goodbye=call.goodbye,
            succeeded_tools=frozenset(filter(None, call.succeeded_tools.split(","))),
            marked_qualified=call.marked_qualified,
        )
        decision = decide(facts, self.rule_for(call.agent_name, call.agent_version))
        if call.ended_at is None:
            return None  # escalated, still going: decided at its end
        call.outcome = decision.outcome.value
        call.qualified = decision.qualified
        return decision

    def _usage(
        self, session: Session, fact: TurnFact | CallEndFact | CostFact, usage: Usage,
        turn_index: int | None,
    ) -> tuple[tuple[CostLine, ...], str, bool]:  # fmt: skip
        key = fact.call
        row = UsageRow(
            event_id=fact.event_id,
            kind=kind_of(fact),
            tenant=key.tenant,
            call_id=key.call_id,
            turn_index=turn_index,
            agent_name=key.agent_name,
            agent_version=key.agent_version,
            shadow=key.shadow,
            occurred_at=fact.occurred_at,
            stt_ms=_ms(usage.stt_seconds),
            prompt_tokens=usage.prompt_tokens,
            cached_tokens=usage.cached_tokens,
            completion_tokens=usage.completion_tokens,
            tts_characters=usage.tts_characters,
            tts_ms=_ms(usage.tts_seconds),
            tools=",".join(usage.tools),
            telephony_ms=_ms(usage.telephony_seconds),
        )
        session.add(row)
        table = self.prices.get(key.tenant)
        if table is None:
            log.error(
                "tenant %r has no price table: usage of %s recorded unpriced",
                key.tenant, fact.event_id,
            )  # fmt: skip
            return (), "", True
        try:
            version = table.at(fact.occurred_at)
        except LookupError as exc:
            log.error("%s: usage of %s recorded unpriced", exc, fact.event_id)
            return (), table.currency, True
        price_id = self._price_ids.get((table.tenant, version.version))
        if price_id is None:
            raise RuntimeError("sync_prices() was not called before apply()")
        lines = price(usage, version)
        for line in lines:
            row.costs.append(
                CostRow(
                    price_table_id=price_id,
                    tenant=key.tenant,
                    call_id=key.call_id,
                    agent_name=key.agent_name,
                    agent_version=key.agent_version,
                    shadow=key.shadow,
                    occurred_at=fact.occurred_at,
                    component=line.component.value,
                    item=line.item,
                    quantity=str(line.quantity),
                    unit=line.unit,
                    rate=str(line.rate),
                    per=line.per,
                    cost_picos=to_picos(line.cost),
                    currency=table.currency,
                )
            )
        return lines, table.currency, False


def _ms(value: Decimal) -> int:
    return int(value.scaleb(3))


def _rates_json(version: PriceVersion) -> str:
    data = version.model_dump(mode="json", exclude={"version", "effective_from"})
    return json.dumps(data, sort_keys=True)
