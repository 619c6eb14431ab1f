"""The rollout operator's cost_per_turn query reads exactly the series the cost ledger serves."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import promql_parser
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import generate_latest

from trunkline.ledger.facts import CallKey
from trunkline.ledger.metrics import LedgerMetrics
from trunkline.ledger.prices import LlmRates, PriceVersion
from trunkline.ledger.pricing import Usage, price
from trunkline.ledger.store import Applied
from trunkline.rollout.metrics import promql
from trunkline.rollout.resources import Metric, MetricName, ThresholdRange
from trunkline.telemetry.prometheus import PrometheusReader, registry_for

pytestmark = pytest.mark.unit


def _selectors(node: Any) -> list[Any]:
    if type(node).__name__ == "VectorSelector":
        return [node]
    found: list[Any] = []
    for attr in ("lhs", "rhs", "expr", "vector_selector", "param"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, int | float | str):
            found += _selectors(child)
    for child in getattr(node, "args", None) or []:
        found += _selectors(child)
    return found


def test_cost_per_turn_asks_for_the_ledgers_counters_with_their_labels() -> None:
    reader = PrometheusReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = LedgerMetrics(provider.get_meter("ledger"))
    rates = PriceVersion(
        version="v1",
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
        llm=LlmRates(prompt_per_1k=Decimal("0.00015"), completion_per_1k=Decimal("0.0006")),
    )
    key = CallKey("acme", "c1", "acme-dental", "1.1.0", shadow=True)
    lines = price(Usage(prompt_tokens=1000, completion_tokens=100), rates)
    metrics.applied([Applied(key, "turn", lines, "USD"), Applied(key, "turn", lines, "USD")])
    exposition = generate_latest(registry_for(reader)).decode()
    provider.shutdown()

    metric = Metric(name=MetricName.COST_PER_TURN, threshold_range=ThresholdRange(max=0.01))
    query = promql(metric, agent="acme-dental", version="1.1.0", window_s=300)
    selectors = _selectors(promql_parser.parse(query))
    assert {s.name for s in selectors} == {"ledger_cost_total", "ledger_turns_total"}
    for selector in selectors:
        wanted = {m.name: m.value for m in selector.matchers.matchers}
        assert wanted == {"agent": "acme-dental", "version": "1.1.0"}
        served = [
            line for line in exposition.splitlines()
            if line.startswith(selector.name + "{")
            and all(f'{k}="{v}"' in line for k, v in wanted.items())
        ]  # fmt: skip
        assert served, f"{selector.name} with {wanted} is not served:\n{exposition}"
    turns = [line for line in exposition.splitlines() if line.startswith("ledger_turns_total{")]
    assert turns == [
        'ledger_turns_total{agent="acme-dental",shadow="true",tenant="acme",version="1.1.0"} 2.0'
    ]
    assert 'component="llm"' in exposition
    # two turns at 0.00015 + 0.00006 each
    cost = next(line for line in exposition.splitlines() if line.startswith("ledger_cost_total{"))
    assert float(cost.rsplit(" ", 1)[1]) == pytest.approx(0.00042)
