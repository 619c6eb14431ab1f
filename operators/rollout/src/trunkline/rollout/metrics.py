"""Where the analysis reads its metrics: a small ABC, Prometheus in production, a fake in tests.

:meth:`MetricsSource.read` owns the timeout and turns every failure (source down, timeout, no
series, NaN) into a :class:`Reading` without a value, i.e. an *inconclusive* check, never a
failed one; a source implements only ``_query``.

Default queries are the contract with the services' ``/metrics`` (``{agent}``, ``{version}``
and ``{window}`` are filled in; a metric's ``query`` in the AgentRollout overrides them). The
gateway labels its voice-to-voice and stage histograms, dropped turns and replies with the
call's ``agent`` and ``version`` (``trunkline.gateway.metrics.version_labels``), as the shadow
runners and the cost ledger label theirs.
"""

from __future__ import annotations

import abc
import asyncio
import math
from collections.abc import Mapping

import aiohttp

from trunkline.rollout.analysis import Reading
from trunkline.rollout.resources import Metric, MetricName

_SELECTOR = 'agent="{agent}",version="{version}"'
DEFAULT_QUERIES: dict[MetricName, str] = {
    MetricName.VOICE_TO_VOICE_P95_MS: (
        "1000 * histogram_quantile(0.95, sum by (le) (rate("
        f"gateway_voice_to_voice_duration_s_bucket{{{_SELECTOR}}}[{{window}}])))"
    ),
    MetricName.LLM_TTFT_P95_MS: (
        "1000 * histogram_quantile(0.95, sum by (le) (rate("
        f'gateway_stage_duration_s_bucket{{stage="llm_ttft",{_SELECTOR}}}[{{window}}])))'
    ),
    MetricName.DROPPED_TURN_RATIO: (
        f"sum(rate(gateway_turns_dropped_total{{{_SELECTOR}}}[{{window}}])) / "
        f"sum(rate(gateway_replies_total{{{_SELECTOR}}}[{{window}}]))"
    ),
    MetricName.EVAL_PASS_RATE: f"avg_over_time(shadow_eval_pass_rate{{{_SELECTOR}}}[{{window}}])",
    MetricName.FAITHFULNESS: f"avg_over_time(shadow_faithfulness{{{_SELECTOR}}}[{{window}}])",
    MetricName.TOOL_CALL_AGREEMENT: (
        f"avg_over_time(shadow_tool_call_agreement{{{_SELECTOR}}}[{{window}}])"
    ),
    MetricName.REPLY_TIME_DELTA_MS: (  # of the medians (histograms hold no negative values)
        "1000 * (histogram_quantile(0.5, sum by (le) (rate("
        f"shadow_reply_time_s_bucket{{{_SELECTOR}}}[{{window}}]))) - "
        "histogram_quantile(0.5, sum by (le) (rate("
        f"shadow_live_reply_time_s_bucket{{{_SELECTOR}}}[{{window}}]))))"
    ),
    MetricName.COST_PER_TURN: (  # the cost ledger's counters (trunkline.ledger.metrics)
        f"sum(rate(ledger_cost_total{{{_SELECTOR}}}[{{window}}])) / "
        f"sum(rate(ledger_turns_total{{{_SELECTOR}}}[{{window}}]))"
    ),
}


def promql(metric: Metric, *, agent: str, version: str, window_s: float) -> str:
    """The query for ``metric`` of one agent version over the last ``window_s`` seconds."""
    template = metric.query or DEFAULT_QUERIES[metric.name]
    window = f"{max(1, round(window_s))}s"
    return (
        template.replace("{agent}", agent).replace("{version}", version).replace("{window}", window)
    )


class MetricUnavailableError(RuntimeError):
    """The source answered but has no usable value (no series, an error status)."""


class MetricsSource(abc.ABC):
    """Reads one metric of one agent version; failures become inconclusive readings."""

    timeout_s: float = 5.0
    min_window_s: float = 0.0
    """Read over at least this long, whatever the interval (Prometheus: a rate needs a few
    scrapes to mean anything)."""

    async def read(self, metric: Metric, *, agent: str, version: str, window_s: float) -> Reading:
        try:
            value = await asyncio.wait_for(
                self._query(metric, agent=agent, version=version, window_s=window_s),
                self.timeout_s,
            )
        except TimeoutError:
            return Reading(None, f"no answer within {self.timeout_s:g}s")
        except (MetricUnavailableError, aiohttp.ClientError, OSError, ValueError) as exc:
            return Reading(None, str(exc) or type(exc).__name__)
        if value is None or math.isnan(value) or math.isinf(value):
            return Reading(None, "no data" if value is None else f"value {value}")
        return Reading(value)

    async def read_all(
        self,
        metrics: tuple[Metric, ...],
        *,
        agent: str,
        version: str,
        window_s: float,
        baseline: str | None = None,
    ) -> dict[str, Reading]:
        """Every metric of ``version``; ``baseline`` (the stable version, also shadowed) is
        what a source that compares versions compares with (this one ignores it)."""
        readings = await asyncio.gather(
            *(self.read(m, agent=agent, version=version, window_s=window_s) for m in metrics)
        )
        return {m.name.value: r for m, r in zip(metrics, readings, strict=True)}

    @abc.abstractmethod
    async def _query(
        self, metric: Metric, *, agent: str, version: str, window_s: float
    ) -> float | None:
        """The value, or None when there is none; raise on errors."""

    async def close(self) -> None:  # noqa: B027 - an optional hook, not an abstract one
        """Release connections (default: nothing to release)."""


class PrometheusSource(MetricsSource):
    """``GET {url}/api/v1/query?query=...``: the first sample of an instant vector or a scalar."""

    min_window_s = 60.0

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def _query(
        self, metric: Metric, *, agent: str, version: str, window_s: float
    ) -> float | None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        query = promql(metric, agent=agent, version=version, window_s=window_s)
        async with self._session.get(f"{self.url}/api/v1/query", params={"query": query}) as resp:
            body = await resp.json(content_type=None)
        if body.get("status") != "success":
            raise MetricUnavailableError(f"prometheus: {body.get('error', 'query failed')}")
        data = body.get("data", {})
        result = data.get("result")
        if data.get("resultType") == "scalar" and result:
            return float(result[1])
        if not result:
            return None
        return float(result[0]["value"][1])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class StaticSource(MetricsSource):
    """Values set by hand, per (version, metric name): the fake for tests and local runs.

    A missing value reads as "no data"; an ``Exception`` set as the value is raised (a source
    that is down). Every read is recorded in ``reads``.
    """

    def __init__(self, values: Mapping[tuple[str, str], float | Exception] | None = None) -> None:
        self.values: dict[tuple[str, str], float | Exception] = dict(values or {})
        self.reads: list[tuple[str, str]] = []

    def set(self, version: str, name: str | MetricName, value: float | Exception) -> None:
        self.values[(version, str(name))] = value

    async def _query(
        self, metric: Metric, *, agent: str, version: str, window_s: float
    ) -> float | None:
        self.reads.append((version, metric.name.value))
        value = self.values.get((version, metric.name.value))
        if isinstance(value, Exception):
            raise value
        return value
