"""Per-tenant tool rate limits across gateway replicas, in a real Redis (issue 13): two
replicas (each its own Redis client and executor) share one tenant's limit, the window slides,
concurrent decisions never overshoot, tenants are apart, and with Redis gone each replica
limits on its own."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from redis.asyncio import Redis

from trunkline.gateway.core.tools import ToolBook, ToolPolicy, ToolStatus
from trunkline.gateway.peers.types import CallInfo, ToolCallRequested
from trunkline.gateway.tools import ToolExecutor, ToolRunner
from trunkline.gateway.tools.redis_limits import RedisRateLimiter, rate_key
from trunkline.gateway.tools.security import ListAuditSink, TenantLimits, ToolSecurity
from trunkline.testing.clock import FakeClock

pytestmark = pytest.mark.integration

REFUND = ToolPolicy(
    name="refund",
    endpoint="http://127.0.0.1:1/refund",
    parameters={"type": "object", "properties": {"account_id": {"type": "string"}}},
    read_only=False,
    max_calls_per_minute=3,
)


class Runner(ToolRunner):
    def __init__(self) -> None:
        self.ran = 0

    async def _run(self, call: CallInfo, tool: ToolPolicy, arguments: dict[str, Any]) -> Any:
        self.ran += 1
        return {"ok": True}


class Wall:
    """The replicas' shared wall clock, moved by the test."""

    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[tuple[Redis, Redis]]:
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    await first.delete(rate_key("acme", "refund"), rate_key("volt", "refund"))
    try:
        yield first, second
    finally:
        await first.aclose()
        await second.aclose()


def replica(limits: TenantLimits) -> tuple[ToolExecutor, Runner]:
    runner = Runner()
    executor = ToolExecutor(
        ToolBook([REFUND], max_rounds=8),
        runner,
        clock=FakeClock(),
        tracer=TracerProvider().get_tracer("t"),
        security=ToolSecurity(limits, ListAuditSink()),
    )
    return executor, runner


async def refund(executor: ToolExecutor, tenant: str, n: int) -> ToolStatus:
    call = CallInfo(f"CA{n}", tenant, "acme-dental", "1.0.0")
    request = ToolCallRequested(f"t{n}", "refund", json.dumps({"account_id": str(n)}))
    return (await executor.execute(call, request, 0)).status


async def test_two_replicas_share_one_tenants_limit_and_the_window_slides(
    clients: tuple[Redis, Redis],
) -> None:
    wall = Wall()
    a, ran_a = replica(RedisRateLimiter(clients[0], wall=wall))
    b, ran_b = replica(RedisRateLimiter(clients[1], wall=wall))
    ok = ToolStatus.SUCCEEDED
    assert [await refund(a, "acme", 1), await refund(a, "acme", 2)] == [ok, ok]
    wall.t += 30
    assert await refund(b, "acme", 3) == ok  # the third of the minute, on the other replica
    assert await refund(b, "acme", 4) is ToolStatus.RATE_LIMITED
    assert await refund(a, "acme", 5) is ToolStatus.RATE_LIMITED
    assert await refund(b, "volt", 6) == ok  # another tenant has its own limit
    assert (ran_a.ran, ran_b.ran) == (2, 2)  # a refused call never reached the tool
    wall.t += 31  # the first two are over a minute old: two slots again
    assert [await refund(b, "acme", 7), await refund(a, "acme", 8)] == [ok, ok]
    assert await refund(a, "acme", 9) is ToolStatus.RATE_LIMITED
    ttl = await clients[0].pttl(rate_key("acme", "refund"))
    assert 0 < ttl <= 60_000  # the set goes with its window


async def test_concurrent_decisions_on_two_replicas_never_overshoot(
    clients: tuple[Redis, Redis],
) -> None:
    wall = Wall()
    limiters = [RedisRateLimiter(client, wall=wall) for client in clients]
    decisions = await asyncio.gather(
        *(limiters[i % 2].allow("acme", "refund", 5, 0.0) for i in range(40))
    )
    assert sum(decisions) == 5
    assert await clients[0].zcard(rate_key("acme", "refund")) == 5


async def test_with_redis_gone_each_replica_limits_on_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
    try:
        executor, runner = replica(RedisRateLimiter(gone))
        with caplog.at_level(logging.WARNING, "trunkline.gateway.tools.redis_limits"):
            statuses = [await refund(executor, "acme", n) for n in range(4)]
    finally:
        await gone.aclose()
    ok, limited = ToolStatus.SUCCEEDED, ToolStatus.RATE_LIMITED
    assert statuses == [ok, ok, ok, limited]
    assert runner.ran == 3
    warnings = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(warnings) == 1  # logged once, not per call
