"""The ledger's metrics (OpenTelemetry instruments, served on /metrics by trunkline.telemetry).

``ledger_cost_total`` and ``ledger_turns_total`` (labels ``agent``, ``version``, ``tenant``,
``shadow``; cost also ``component``) are what the rollout operator's ``cost_per_turn`` reads:
``sum(rate(ledger_cost_total{agent,version}[w])) / sum(rate(ledger_turns_total{...}[w]))``
(``trunkline.rollout.metrics.DEFAULT_QUERIES``). Cost is in the tenant's currency (a float
here; the ledger's own figures are exact decimals).
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.metrics import Meter

from trunkline.ledger.store import Applied


class LedgerMetrics:
    def __init__(self, meter: Meter) -> None:
        self.cost = meter.create_counter(
            "ledger.cost", description="Cost priced by the ledger, in the tenant's currency"
        )
        self.turns = meter.create_counter("ledger.turns", description="Turns priced by the ledger")
        self.calls = meter.create_counter(
            "ledger.calls", description="Calls ended, by outcome and whether it qualified"
        )
        self.events = meter.create_counter(
            "ledger.events", description="Events applied (redeliveries not counted), by kind"
        )
        self.unpriced = meter.create_counter(
            "ledger.unpriced", description="Usage recorded without a price (tenant has no table)"
        )
        self.write_failures = meter.create_counter(
            "ledger.write_failures", description="Ledger writes that failed and were retried"
        )
        self.bad_events = meter.create_counter(
            "ledger.bad_events", description="Events that could not be read (terminated)"
        )

    def applied(self, batch: Iterable[Applied]) -> None:
        for item in batch:
            base = {
                "agent": item.call.agent_name,
                "version": item.call.agent_version,
                "tenant": item.call.tenant,
                "shadow": str(item.call.shadow).lower(),
            }
            self.events.add(1, {"kind": item.kind})
            if item.kind == "turn":
                self.turns.add(1, base)
            for line in item.lines:
                self.cost.add(float(line.cost), {**base, "component": line.component.value})
            if item.unpriced:
                self.unpriced.add(1, {"tenant": item.call.tenant})
            if item.kind == "call_ended" and item.decision is not None:
                self.calls.add(
                    1,
                    {
                        **base,
                        "outcome": item.decision.outcome.value,
                        "qualified": str(item.decision.qualified).lower(),
                    },
                )
