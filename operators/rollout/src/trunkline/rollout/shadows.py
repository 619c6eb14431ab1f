"""The operator's side of shadow turns, over NATS: which candidates the gateways mirror to, and
the analysis metrics read from the candidates' paired results.

:class:`ShadowRegistry` is what the controller calls when a rollout starts or stops shadowing
(and when a rollout is deleted): :class:`NatsShadows` writes the ``shadow-candidates`` bucket the
gateways watch, and on stop removes the entry and the candidate's durable consumer, so a
stopped candidate leaves nothing behind on the bus. :class:`ShadowResultsSource` is a
:class:`MetricsSource` that reads the candidate's ``ShadowTurnResult`` events of the window and
computes the metrics with :mod:`trunkline.rollout.shadow_metrics`.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from google.protobuf.duration_pb2 import Duration

from trunkline.bus import Bus
from trunkline.bus.shadow import Candidate, ShadowCandidates, read_results
from trunkline.bus.streams import SHADOW
from trunkline.proto.events.v1 import events_pb2
from trunkline.rollout.analysis import Reading
from trunkline.rollout.cluster import TransientError
from trunkline.rollout.metrics import MetricsSource
from trunkline.rollout.resources import Metric
from trunkline.rollout.shadow_metrics import PairedTurn, metric_value


class ShadowRegistry(abc.ABC):
    @abc.abstractmethod
    async def start(self, agent: str, version: str, sample_percent: float) -> None:
        """Gateways mirror ``sample_percent`` of the agent's calls to this version."""

    @abc.abstractmethod
    async def stop(self, agent: str, version: str) -> bool:
        """No more mirroring to this version, and its consumer removed; False if none was."""


class RecordingShadows(ShadowRegistry):
    """In memory: what is shadowed now, and every start/stop (the fake for tests)."""

    def __init__(self) -> None:
        self.active: dict[tuple[str, str], float] = {}
        self.log: list[tuple[str, str, str]] = []

    async def start(self, agent: str, version: str, sample_percent: float) -> None:
        self.active[(agent, version)] = sample_percent
        self.log.append(("start", agent, version))

    async def stop(self, agent: str, version: str) -> bool:
        self.log.append(("stop", agent, version))
        return self.active.pop((agent, version), None) is not None


CONNECT_TIMEOUT_S = 5.0


class BusLink:
    """One NATS connection, made on first use on the loop that uses it (kopf's own loop runs
    in another thread than the process shell's)."""

    def __init__(
        self, url: str, *, tls_ca_file: Path | None = None, creds_file: Path | None = None
    ) -> None:
        """``tls_ca_file``/``creds_file``: as :meth:`Bus.connect` (a TLS NATS, credentials)."""
        self.url = url
        self.tls_ca_file = tls_ca_file
        self.creds_file = creds_file
        self._bus: Bus | None = None
        self._lock: asyncio.Lock | None = None

    async def get(self) -> Bus:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._bus is None:
                try:  # Bus.connect retries forever: a step must not hang on it
                    bus = await asyncio.wait_for(
                        Bus.connect(
                            self.url,
                            name="rollout-operator",
                            tls_ca_file=self.tls_ca_file,
                            creds_file=self.creds_file,
                        ),
                        CONNECT_TIMEOUT_S,
                    )
                except TimeoutError as exc:
                    raise TransientError(f"NATS at {self.url} unreachable") from exc
                await bus.ensure_stream(SHADOW)
                self._bus = bus
            return self._bus

    async def close(self) -> None:
        if self._bus is not None:
            await self._bus.close()
            self._bus = None


class NatsShadows(ShadowRegistry):
    def __init__(self, link: BusLink) -> None:
        self.link = link

    async def start(self, agent: str, version: str, sample_percent: float) -> None:
        await ShadowCandidates(await self.link.get()).put(Candidate(agent, version, sample_percent))

    async def stop(self, agent: str, version: str) -> bool:
        return await ShadowCandidates(await self.link.get()).remove(agent, version)


def decode(raw: bytes) -> events_pb2.ShadowTurnResult:
    result = events_pb2.ShadowTurnResult()
    result.ParseFromString(raw)
    return result


def seconds(value: Duration) -> float:
    return float(value.ToTimedelta().total_seconds())


def paired(
    result: events_pb2.ShadowTurnResult,
    baseline: events_pb2.ShadowTurnResult | None = None,
) -> PairedTurn:
    """One candidate turn, compared with the baseline's answer to the same live turn (the
    stable version in shadow: the same work, headless, at the same time), or with the live
    turn itself when no baseline is shadowed (it also waited for STT, TTS and the audio)."""
    reference = seconds(result.live_reply_time)
    if baseline is not None and not baseline.failed:
        reference = seconds(baseline.shadow_reply_time)
    return PairedTurn(
        live_reply_s=reference,
        shadow_reply_s=seconds(result.shadow_reply_time),
        live_response_s=seconds(result.live_response_time),
        tools_agree=result.tools_agree,
        failed=result.failed,
    )


class ShadowResultsSource(MetricsSource):
    """Metrics of the candidate's shadow turns in the window, read from the SHADOW stream once
    per check (every metric of the check from the same turns)."""

    def __init__(
        self,
        link: BusLink,
        *,
        min_turns: int = 3,
        window_s: float = 0.0,
        timeout_s: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.link = link
        self.min_turns = min_turns
        self.min_window_s = window_s  # a check reads max(interval, this)
        self.timeout_s = timeout_s
        self.clock = clock

    async def turns(
        self, agent: str, version: str, window_s: float, baseline: str | None = None
    ) -> list[PairedTurn]:
        since = self.clock() - timedelta(seconds=window_s)
        bus = await self.link.get()
        results = [decode(r) for r in await read_results(bus, agent, version, since)]
        base: dict[str, events_pb2.ShadowTurnResult] = {}
        if baseline is not None and baseline != version:
            # the baseline may answer a turn a little later: read a little further back
            early = since - timedelta(seconds=window_s)
            for raw in await read_results(bus, agent, baseline, early):
                found = decode(raw)
                base[found.live_event_id] = found
        if not base:  # no baseline shadowed: compare with the live turns themselves
            return [paired(r) for r in results]
        # a turn the baseline has not answered (yet) waits for a later check: paired with the
        # live turn instead it would look seconds faster on a busy machine
        return [paired(r, base[r.live_event_id]) for r in results if r.live_event_id in base]

    async def read_all(
        self,
        metrics: tuple[Metric, ...],
        *,
        agent: str,
        version: str,
        window_s: float,
        baseline: str | None = None,
    ) -> dict[str, Reading]:
        try:
            turns = await asyncio.wait_for(
                self.turns(agent, version, window_s, baseline), self.timeout_s
            )
        except Exception as exc:  # the bus down or slow: every metric inconclusive
            why = f"shadow results unreadable: {exc!r}"
            return {m.name.value: Reading(None, why) for m in metrics}
        readings = {}
        for metric in metrics:
            value, why, provisional = metric_value(metric.name, turns, self.min_turns)
            readings[metric.name.value] = Reading(value, why, provisional)
        return readings

    async def _query(
        self, metric: Metric, *, agent: str, version: str, window_s: float
    ) -> float | None:
        turns = await self.turns(agent, version, window_s)
        value, _, provisional = metric_value(metric.name, turns, self.min_turns)
        return None if provisional else value
