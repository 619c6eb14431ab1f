"""Call state in Redis: one JSON value per call, optimistic concurrency with WATCH/MULTI."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import datetime

from redis.asyncio import Redis
from redis.exceptions import WatchError

from trunkline.state.base import DEFAULT_MAX_RETRIES, CallStateStoreBase, Updater
from trunkline.state.model import (
    CallExistsError,
    CallNotFoundError,
    CallState,
    ConflictError,
    initial_version,
    next_version,
    utc_now,
)


def state_key(prefix: str, tenant_id: str, call_id: str) -> str:
    """``{prefix}:{tenant}:{call_id}`` (tenant ids cannot contain ':')."""
    if not tenant_id or ":" in tenant_id:
        raise ValueError(f"invalid tenant_id {tenant_id!r}")
    if not call_id:
        raise ValueError("call_id must not be empty")
    return f"{prefix}:{tenant_id}:{call_id}"


class CallStateStore(CallStateStoreBase):
    """``redis`` is a ``redis.asyncio.Redis`` owned by the caller (bytes or decoded replies)."""

    def __init__(
        self,
        redis: Redis,
        ttl_seconds: int,
        key_prefix: str = "trunkline:call",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._redis = redis
        self.ttl_seconds = ttl_seconds
        self.key_prefix = key_prefix
        self._clock = clock

    def key(self, tenant_id: str, call_id: str) -> str:
        return state_key(self.key_prefix, tenant_id, call_id)

    async def create(self, state: CallState) -> CallState:
        stored = initial_version(state, self._clock())
        created = await self._redis.set(
            self.key(state.tenant_id, state.call_id),
            stored.model_dump_json(),
            ex=self.ttl_seconds,
            nx=True,
        )
        if not created:
            raise CallExistsError(f"call {state.call_id!r} of tenant {state.tenant_id!r} exists")
        return stored

    async def get(self, tenant_id: str, call_id: str) -> CallState | None:
        raw = await self._redis.get(self.key(tenant_id, call_id))
        return CallState.model_validate_json(raw) if raw is not None else None

    async def update(
        self,
        tenant_id: str,
        call_id: str,
        fn: Updater,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> CallState:
        key = self.key(tenant_id, call_id)
        for attempt in range(max_retries + 1):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        raise CallNotFoundError(
                            f"no state for call {call_id!r} of tenant {tenant_id!r}"
                        )
                    current = CallState.model_validate_json(raw)
                    new = next_version(current, fn(current), self._clock())
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, new.model_dump_json(), ex=self.ttl_seconds)
                    await pipe.execute()
                    return new
                except WatchError:
                    pass
            if attempt < max_retries:
                # jittered back-off so that racing writers spread out
                await asyncio.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.05)))
        raise ConflictError(
            f"call {call_id!r} of tenant {tenant_id!r} kept changing: "
            f"gave up after {max_retries} retries"
        )

    async def delete(self, tenant_id: str, call_id: str) -> bool:
        return bool(await self._redis.delete(self.key(tenant_id, call_id)))
