"""Per-tenant tool rate limits shared by every gateway replica, in Redis (issue 13).

One sorted set per tenant and tool (``trunkline:tool-rate:<tenant>:<tool>``) holds the calls of
the last 60 s, scored by wall-clock milliseconds; one Lua script drops the old ones, counts, and
adds the new call only when it fits, atomically, so two replicas deciding at the same instant
never both take the last slot. The key expires with its window.

Redis unreachable: the call is decided by this process's own limiter (the limit then holds per
replica, as before) and the failure is logged once until Redis answers again; a tool call never
waits on Redis longer than the client's timeouts.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from trunkline.gateway.tools.security import WINDOW_S, TenantLimits, TenantRateLimiter

log = logging.getLogger(__name__)

KEY_PREFIX = "trunkline:tool-rate"
# KEYS[1] the set; ARGV: now (ms), window (ms), limit, member. 1: counted, 0: over the limit.
SLIDING_WINDOW = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


def rate_key(tenant: str, tool: str) -> str:
    return f"{KEY_PREFIX}:{tenant}:{tool}"


class RedisRateLimiter(TenantLimits):
    """Tool calls per tenant and tool over the last 60 s, counted across replicas in Redis.

    ``wall``: the clock the window is kept in (wall time: every replica's must agree; the
    executor's ``now`` is this process's monotonic clock and is only used by the fallback)."""

    def __init__(
        self,
        redis: Redis,
        *,
        wall: Callable[[], float] = time.time,
        fallback: TenantRateLimiter | None = None,
    ) -> None:
        self.redis = redis
        self.wall = wall
        self.fallback = fallback or TenantRateLimiter()
        self._script = redis.register_script(SLIDING_WINDOW)
        self._down = False

    async def allow(self, tenant: str, tool: str, per_minute: int | None, now: float) -> bool:
        if per_minute is None:
            return True
        member = uuid.uuid4().hex
        args: list[int | str] = [int(self.wall() * 1000), int(WINDOW_S * 1000), per_minute, member]
        try:
            counted = await self._script(keys=[rate_key(tenant, tool)], args=args)
        except (RedisError, OSError) as exc:
            if not self._down:
                log.warning(
                    "tool rate limits: Redis unavailable (%s); limiting per replica until it "
                    "answers",
                    type(exc).__name__,
                )
                self._down = True
            return self.fallback.allow_now(tenant, tool, per_minute, now)
        if self._down:
            log.info("tool rate limits: Redis answers again; limits are shared again")
            self._down = False
        return bool(counted)
